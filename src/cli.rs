//! The command line: one subcommand per job, each with `--help`.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// prioritize: who to contact about a delinquent account, how, and in what order.
#[derive(Debug, Parser)]
#[command(name = "prioritize", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of a table folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    /// CSV below 100,000 accounts, Parquet from there on.
    Auto,
    Csv,
    Parquet,
}

/// What `outcomes` is asked for.
#[derive(Debug, Clone, Args)]
pub struct OutcomesArgs {
    /// The store the decisions are in: sqlite://PATH (default: prioritize.db
    /// in the data folder) or postgres://…
    #[arg(long)]
    pub db: Option<String>,
    /// The data folder whose payment history and actions tell what followed.
    #[arg(long)]
    pub data: PathBuf,
    /// Days after the decision's day a payment counts.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3_650))]
    pub horizon_days: u32,
    /// Only decisions of this day or later.
    #[arg(long)]
    pub since: Option<NaiveDate>,
    /// The last day payments are known (default: the data folder's latest
    /// cycle end or action, or an action recorded through the API).
    #[arg(long)]
    pub through: Option<NaiveDate>,
    /// Folder to write outcomes.csv (or .parquet) into.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = TableFormat::Csv)]
    pub format: TableFormat,
}

/// `prioritize backtest`.
#[derive(Debug, Clone, Args)]
pub struct BacktestArgs {
    /// Accounts in the book on the first day.
    #[arg(long, default_value_t = 20_000)]
    pub accounts: usize,
    /// Days run, one plan a day.
    #[arg(long, default_value_t = 84, value_parser = clap::value_parser!(u64).range(1..=3_650))]
    pub days: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The latent response the customers follow.
    #[arg(long, value_enum, default_value_t = crate::simulate::World::A)]
    pub world: crate::simulate::World,
    /// The first day planned.
    #[arg(long, default_value = "2026-01-05")]
    pub start: NaiveDate,
    /// The loop retrains every so many days (0: never).
    #[arg(long, default_value_t = 7)]
    pub retrain_every: usize,
    /// Days after a decision (its own included) whose payments are its outcome.
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u64).range(1..=365))]
    pub horizon_days: u64,
    /// New delinquent accounts a day, as a share of the first day's accounts.
    #[arg(long, default_value_t = 0.02)]
    pub arrivals_per_day: f64,
    /// The loop trains on at most about this many of its decisions (a seeded sample).
    #[arg(long, default_value_t = 60_000)]
    pub train_rows: usize,
    /// Tree configurations tried beyond the first when the loop trains.
    #[arg(long, default_value_t = 1)]
    pub search: usize,
    /// Most trees in each ensemble when the loop trains (early stopping
    /// usually ends sooner).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub trees: u64,
    /// Cross-fitting folds when the loop trains.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(2..=20))]
    pub folds: u64,
    /// When the loop's retrained model replaces the champion: `dr`, when its
    /// doubly robust gain on held-out days exceeds its standard error; or
    /// `always` (to see what each retrained model does, whatever it is worth).
    #[arg(long, value_enum, default_value_t = crate::backtest::Promotion::Dr)]
    pub promotion: crate::backtest::Promotion,
    /// The loop's exploration share while it runs on the staged rules,
    /// before its first promotion (then the engine's share, `--explore`).
    #[arg(long, default_value_t = 0.2)]
    pub cold_explore: f64,
    /// Policies run, side by side on the same world and seed.
    #[arg(long = "policy", value_enum, default_values_t = [
        crate::backtest::PolicyKind::Loop,
        crate::backtest::PolicyKind::Rules,
        crate::backtest::PolicyKind::Oracle,
    ])]
    pub policies: Vec<crate::backtest::PolicyKind>,
    /// Keep the loop's training folders, models and final data folder
    /// (with its matured decisions as `outcomes`) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(long, default_value = "USD")]
    pub currency: String,
    /// Costs, capacities and the exploration share. Without any --capacity,
    /// each capped strategy gets one use a day per so many accounts on the
    /// first day: call 25, settlement_offer 100, installment_plan 50,
    /// demand_letter 20, field_visit 500, legal 400, agency 200.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Strategy-engine settings shared by `plan` and `evaluate-policy`.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// A strategy's uses per planning day, as STRATEGY=N (repeatable).
    #[arg(long = "capacity", value_name = "STRATEGY=N")]
    pub capacities: Vec<String>,
    /// A strategy's cost per use, as STRATEGY=AMOUNT (repeatable).
    #[arg(long = "cost", value_name = "STRATEGY=AMOUNT")]
    pub costs: Vec<String>,
    /// Share of accounts given a strategy drawn at random among the allowed
    /// ones (default 0.05, or the config file's); 0 turns exploration off.
    #[arg(long)]
    pub explore: Option<f64>,
    /// TOML file with costs, capacities, rule parameters and the exploration share.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Champion/challenger: a second model folder that plans a share of the
    /// people (with that share of each capacity); each plan row names its model.
    #[arg(long, value_name = "MODEL_DIR")]
    pub challenger: Option<PathBuf>,
    /// Share of people (strictly between 0 and 1) the challenger plans (default 0.1).
    #[arg(long, value_name = "SHARE")]
    pub challenger_share: Option<f64>,
}

/// Which learner the strategy-response model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResponseLearner {
    /// Whichever candidate's plan is worth most on out-of-fold rows.
    Auto,
    Scorecard,
    Trees,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a portfolio, check it and compute its features, printing what it did.
    Demo {
        /// Folder for the demo's data and outputs.
        #[arg(long, default_value = "target/demo")]
        dir: PathBuf,
        /// Accounts to simulate.
        #[arg(long, default_value_t = 20_000)]
        accounts: usize,
        /// Address the demo serves on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Stop after planning instead of serving.
        #[arg(long)]
        no_serve: bool,
    },
    /// Write a synthetic portfolio (accounts, payment_history, actions, outcomes) to a folder.
    Simulate {
        /// Number of accounts.
        #[arg(long)]
        accounts: usize,
        /// Random seed: the same seed gives the same portfolio.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output folder (replaced if it holds only data tables).
        #[arg(long)]
        out: PathBuf,
        /// The portfolio's as-of day (YYYY-MM-DD); the last cycle ends on or before it.
        #[arg(long, default_value = "2026-09-30")]
        as_of: NaiveDate,
        /// Monthly cycles of payment history per account.
        #[arg(long, default_value_t = 12)]
        cycles: usize,
        /// ISO 4217 currency of the portfolio.
        #[arg(long, default_value = "USD")]
        currency: String,
        #[arg(long, value_enum, default_value_t = TableFormat::Auto)]
        format: TableFormat,
        /// Also write the simulator's hidden truth (true P(paid) and amount under
        /// every strategy, per account) to this Parquet file, for `evaluate-policy --truth`.
        #[arg(long)]
        truth_out: Option<PathBuf>,
        /// The latent response of the customers: `a`, the project's own world,
        /// or `b`, a deliberately different one (to check a model on a world it
        /// was not designed with).
        #[arg(long, value_enum, default_value_t = crate::simulate::World::A)]
        world: crate::simulate::World,
    },
    /// Turn the public UCI credit-card file into the contract's tables.
    ImportUci {
        /// The UCI CSV file (data/uci_credit_card_train.csv).
        #[arg(long)]
        input: PathBuf,
        /// Output folder (replaced if it holds only data tables).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value_t = TableFormat::Csv)]
        format: TableFormat,
    },
    /// Check a data folder against the contract and list every problem found.
    Validate {
        #[arg(long)]
        data: PathBuf,
        /// Stop listing after this many problems (they are still counted).
        #[arg(long, default_value_t = 100)]
        max_problems: usize,
    },
    /// Fit the payment-propensity and strategy-response models on a data folder's outcomes.
    Train {
        #[arg(long)]
        data: PathBuf,
        /// Model folder to write (replaced if it holds only model files).
        #[arg(long)]
        out: PathBuf,
        /// Seed of the folds and the search (the same data and seed give the same model).
        #[arg(long)]
        seed: Option<u64>,
        /// Folds of the cross-fitting (by account, stratified); default 5.
        #[arg(long)]
        folds: Option<usize>,
        /// Share of accounts held out of everything for an untouched test; default 0 (none).
        #[arg(long)]
        test_share: Option<f64>,
        /// Most rounds per tree ensemble (early stopping in the folds usually ends sooner).
        #[arg(long)]
        trees: Option<usize>,
        /// Depth of each tree in the first configuration tried.
        #[arg(long)]
        max_depth: Option<usize>,
        /// Learning rate of the first configuration tried.
        #[arg(long)]
        learning_rate: Option<f32>,
        /// Minimum hessian sum in a leaf, first configuration.
        #[arg(long)]
        min_leaf_weight: Option<f32>,
        /// L2 penalty of the leaf weights, first configuration.
        #[arg(long)]
        l2: Option<f32>,
        /// Further tree configurations (seeded draws) the search tries; 0 tries only the first.
        #[arg(long)]
        search: Option<usize>,
        /// A wall-clock limit on the search of each model (the first two candidates
        /// always run); none by default, so that a seed gives the same model anywhere.
        #[arg(long)]
        search_seconds: Option<f64>,
        /// Learner of the strategy-response model; `auto` picks by the value of its plan.
        #[arg(long, value_enum, default_value_t = ResponseLearner::Auto)]
        response_learner: ResponseLearner,
        /// Costs and capacities the candidate plans are judged under (as `plan` takes them).
        #[command(flatten)]
        engine: EngineArgs,
        /// Also write the held-out rows with their predicted p_pay to this CSV.
        #[arg(long)]
        holdout_out: Option<PathBuf>,
    },
    /// Write every account's calibrated probability of paying and its reasons to CSV.
    Score {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        model: PathBuf,
        /// One row per account on this day; without it, one row per `outcomes` row.
        #[arg(long)]
        as_of: Option<NaiveDate>,
        /// Output CSV: account_id, as_of, p_pay, reasons.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a model's metrics on a data folder with outcomes, optionally beside another model's.
    Evaluate {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        model: PathBuf,
        /// A second model folder to compare with, side by side.
        #[arg(long)]
        against: Option<PathBuf>,
    },
    /// Plan the day: each account's strategy under the compliance rules and the
    /// day's capacities, with each strategy's queue in order.
    ///
    /// A book too large for one process is planned in partitions: run
    /// `--partition I/N` for I = 0 … N-1 (each writes a Parquet file of the
    /// accounts of a share of the people), then `--merge` over all of them,
    /// which allocates the capacity over the whole book and writes the plan,
    /// the same plan as one run over the whole book.
    Plan {
        #[arg(long, required_unless_present = "merge")]
        data: Option<PathBuf>,
        #[arg(long, required_unless_present = "merge")]
        model: Option<PathBuf>,
        /// The day planned (YYYY-MM-DD).
        #[arg(long, required_unless_present = "merge")]
        as_of: Option<NaiveDate>,
        /// Assess only partition I of N (numbered from 0) of the people, and
        /// write it to --out as Parquet for `--merge`.
        #[arg(long, value_name = "I/N", conflicts_with = "merge")]
        partition: Option<crate::strategy::partition::Partition>,
        /// Make the plan from the partitions written by `--partition` (all N
        /// of them): exploration, allocation under capacity and queue ranks.
        #[arg(long, value_name = "PART", num_args = 1.., conflicts_with_all = ["data", "model", "as_of"])]
        merge: Vec<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
        /// Output CSV, one row per account (with --partition: the partition's Parquet file).
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve ranked worklists, leases, actions, segments and models over HTTP.
    Serve {
        /// The data folder the plan is built from.
        #[arg(long)]
        data: PathBuf,
        /// The model folder to plan with; versions beside it can be activated.
        #[arg(long)]
        model: PathBuf,
        /// Where model versions are found (default: the folder holding --model).
        #[arg(long)]
        models: Option<PathBuf>,
        /// The store: sqlite://PATH (default: prioritize.db in the data folder) or postgres://…
        #[arg(long)]
        db: Option<String>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The day planned (default: today, UTC).
        #[arg(long)]
        as_of: Option<NaiveDate>,
        /// Days each plan's decisions are kept for `outcomes` (plan rows go after a day).
        #[arg(long, default_value_t = crate::serve::DEFAULT_RETENTION_DAYS,
              value_parser = clap::value_parser!(u32).range(1..=36_500))]
        retention_days: u32,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Write the contract's outcomes table from the store's served decisions
    /// whose horizon has passed and the payments that followed them.
    Outcomes(OutcomesArgs),
    /// Run a living simulated book day after day under the learning loop,
    /// the staged rules and the oracle, side by side on the same world.
    Backtest(BacktestArgs),
    /// Make a random API key for a role: prints the key (give it to the caller)
    /// and the [[api_keys]] entry for the config file (which holds only its hash).
    Keygen {
        /// collector, analyst, manager or admin
        #[arg(long)]
        role: String,
    },
    /// Estimate what the plan is worth from logged outcomes (inverse propensity
    /// and doubly robust), beside the logged policy and a staged rules baseline.
    EvaluatePolicy {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        model: PathBuf,
        /// The day of the logged decisions (default: the outcomes' only as_of).
        #[arg(long)]
        as_of: Option<NaiveDate>,
        #[command(flatten)]
        engine: EngineArgs,
        /// The simulator's truth (`simulate --truth-out`): adds each policy's true
        /// value and the best possible allocation.
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Also write the figures as JSON to this file (for notebooks and scripts).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also judge a plan made elsewhere, as NAME=FILE.csv with columns
        /// `account_id,strategy` (one row per account of the day); repeatable.
        /// Decisions on a strategy the rules block are counted as violations
        /// and valued as `none`.
        #[arg(long = "decisions", value_name = "NAME=FILE")]
        decisions: Vec<String>,
    },
    /// Compute the model features of a data folder and write them to Parquet.
    Features {
        #[arg(long, required_unless_present = "list")]
        data: Option<PathBuf>,
        /// One row per account on this day; without it, one row per `outcomes` row.
        #[arg(long)]
        as_of: Option<NaiveDate>,
        /// Output Parquet file.
        #[arg(long, required_unless_present = "list")]
        out: Option<PathBuf>,
        /// Print the documented feature list (Markdown) and exit.
        #[arg(long)]
        list: bool,
    },
}
