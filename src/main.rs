use std::process::ExitCode;

use clap::Parser;
use prioritize::cli::{Cli, Command, ResponseLearner};
use prioritize::cmd;
use prioritize::features::catalog;
use prioritize::model::{LearnerKind, TrainParams};
use prioritize::simulate::SimulationParams;
use tracing_subscriber::EnvFilter;

// polars and the planner allocate and free buffers of hundreds of MB, stage
// after stage. The system allocator unmaps each freed one, and the next must
// be faulted in and zeroed afresh: on the two-core machine the benchmarks run
// on, a third of `plan`'s CPU time at 1M accounts was the kernel zeroing
// pages. mimalloc keeps freed memory for a moment and reuses it. Without
// huge pages (`no_thp`): zeroing 2 MB for every touched region cost more
// than it saved there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn run(cli: Cli) -> anyhow::Result<String> {
    match cli.command {
        Command::Demo {
            dir,
            accounts,
            listen,
            no_serve,
        } => cmd::demo::run(&dir, accounts, (!no_serve).then_some(listen)),
        Command::Serve {
            data,
            model,
            models,
            db,
            listen,
            as_of,
            retention_days,
            engine,
        } => cmd::serve::run(cmd::serve::ServeArgs {
            data,
            model,
            models,
            db,
            listen,
            as_of,
            retention_days,
            engine,
        }),
        Command::Outcomes(args) => cmd::outcomes::run(args),
        Command::Backtest(args) => cmd::backtest::run(args),
        Command::Keygen { role } => cmd::serve::keygen(&role),
        Command::Simulate {
            accounts,
            seed,
            out,
            as_of,
            cycles,
            currency,
            format,
            truth_out,
            world,
        } => {
            let params = SimulationParams {
                accounts,
                seed,
                as_of,
                cycles,
                currency,
                world,
            };
            cmd::simulate::run(&params, &out, format, truth_out.as_deref())
        }
        Command::ImportUci { input, out, format } => cmd::import_uci::run(&input, &out, format),
        Command::Validate { data, max_problems } => cmd::validate::run(&data, max_problems),
        Command::Train {
            data,
            out,
            seed,
            folds,
            test_share,
            trees,
            max_depth,
            learning_rate,
            min_leaf_weight,
            l2,
            search,
            search_seconds,
            response_learner,
            engine,
            holdout_out,
        } => {
            // Only what was given replaces a default; the defaults live in TrainParams.
            let mut params = TrainParams::default();
            let t = &mut params.trees;
            t.iterations = trees.unwrap_or(t.iterations);
            t.max_depth = max_depth.unwrap_or(t.max_depth);
            t.learning_rate = learning_rate.unwrap_or(t.learning_rate);
            t.min_leaf_weight = min_leaf_weight.unwrap_or(t.min_leaf_weight);
            t.l2 = l2.unwrap_or(t.l2);
            params.seed = seed.unwrap_or(params.seed);
            params.folds = folds.unwrap_or(params.folds);
            params.test_share = test_share.unwrap_or(params.test_share);
            params.search = search.unwrap_or(params.search);
            params.search_seconds = search_seconds.or(params.search_seconds);
            params.response_learner = match response_learner {
                ResponseLearner::Auto => None,
                ResponseLearner::Scorecard => Some(LearnerKind::Scorecard),
                ResponseLearner::Trees => Some(LearnerKind::TreeEnsemble),
            };
            cmd::train::run(&data, &out, params, &engine, holdout_out.as_deref())
        }
        Command::Score {
            data,
            model,
            as_of,
            out,
        } => cmd::score::run(&data, &model, as_of, &out),
        Command::Evaluate {
            data,
            model,
            against,
        } => cmd::evaluate::run(&data, &model, against.as_deref()),
        Command::Plan {
            data,
            model,
            as_of,
            partition,
            merge,
            engine,
            out,
        } => match (data, model, as_of) {
            (Some(data), Some(model), Some(as_of)) if merge.is_empty() => match partition {
                Some(part) => cmd::plan::run_partition(&data, &model, as_of, part, &engine, &out),
                None => cmd::plan::run(&data, &model, as_of, &engine, &out),
            },
            _ => cmd::plan::merge(&merge, &engine, &out),
        },
        Command::EvaluatePolicy {
            data,
            model,
            as_of,
            engine,
            truth,
            json,
            decisions,
        } => cmd::evaluate_policy::run(
            &data,
            &model,
            as_of,
            &engine,
            truth.as_deref(),
            json.as_deref(),
            &decisions,
        ),
        Command::Features { list: true, .. } => Ok(catalog::markdown_table()),
        Command::Features {
            data, as_of, out, ..
        } => {
            let (data, out) = (
                data.expect("required by clap"),
                out.expect("required by clap"),
            );
            cmd::features::run(&data, as_of, &out)
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,sqlx=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(summary) => {
            println!("{}", summary.trim_end());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
