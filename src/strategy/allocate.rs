//! Allocation of strategies to accounts under per-day capacities, maximising
//! the total expected value. Exact: the problem is a transportation problem
//! (accounts → strategies), solved by successive longest augmenting paths over
//! the few capacity-limited strategies.
//!
//! Every account first takes its best strategy among those without a capacity
//! (`none` always is one), its *fallback*. Moving it to a capacity-limited
//! strategy gains `value − fallback value`. An augmenting path takes one
//! unassigned account into strategy `a`, moves one account of `a` on to `b`,
//! and so on until it reaches a strategy with a free slot; each edge of the
//! path is the best single move between two strategies, kept in a heap.
//! Always taking the longest path keeps the assignment optimal for its size
//! (the residual graph has no positive cycle), so the first path that gains
//! nothing ends the search at the optimum. Values are whole cents, so sums are
//! exact and ties are broken the same way on every run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Number of strategies.
pub const K: usize = 10;

/// One account's value under each strategy, in cents; `None` where a rule
/// removed the strategy. Strategy 0 (`none`) must be allowed.
pub type Values = [Option<i64>; K];

/// The strategy index chosen for every account.
pub fn allocate(values: &[Values], capacity: &[Option<u64>; K]) -> Vec<usize> {
    let everyone: Vec<usize> = (0..values.len()).collect();
    allocate_among(values, &everyone, capacity)
}

/// [`allocate`] for the accounts at `members` of `values` only; the
/// strategies chosen come in the order of `members`.
pub fn allocate_among(
    all_values: &[Values],
    members: &[usize],
    capacity: &[Option<u64>; K],
) -> Vec<usize> {
    use rayon::prelude::*;
    let value_of = |i: usize| &all_values[members[i]];
    let n = members.len();
    let capped: Vec<usize> = (0..K)
        .filter(|&s| capacity[s].is_some_and(|c| c > 0))
        .collect();
    // Strategies with a capacity of 0 are not available at all.
    let available = |s: usize| capacity[s] != Some(0);
    let fallback: Vec<(usize, i64)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let v = value_of(i);
            let mut best = (0, v[0].expect("`none` is always allowed"));
            for (s, value) in v.iter().enumerate().skip(1) {
                if let Some(value) = value {
                    if capacity[s].is_none() && *value > best.1 {
                        best = (s, *value);
                    }
                }
            }
            best
        })
        .collect();
    let mut chosen: Vec<usize> = fallback.iter().map(|f| f.0).collect();
    if capped.is_empty() {
        return chosen;
    }
    let gain = |i: usize, s: usize| -> Option<i64> {
        (available(s))
            .then_some(value_of(i)[s])
            .flatten()
            .map(|v| v - fallback[i].1)
    };
    // Only accounts that gain from some capped strategy can be worth a slot.
    let candidates: Vec<usize> = (0..n)
        .into_par_iter()
        .filter(|&i| capped.iter().any(|&s| gain(i, s).is_some_and(|g| g > 0)))
        .collect();
    let k = capped.len();
    // Source edges: unassigned candidates by gain, best first.
    let mut entries: Vec<Vec<(i64, usize)>> = vec![Vec::new(); k];
    for &i in &candidates {
        for (node, &s) in capped.iter().enumerate() {
            if let Some(g) = gain(i, s) {
                entries[node].push((g, i));
            }
        }
    }
    // Account indices are unique: the order is total, whatever the sort.
    for list in &mut entries {
        list.par_sort_unstable_by_key(|&(g, i)| (Reverse(g), i));
    }
    let mut next_entry = vec![0usize; k];
    // Where each account is: None at its fallback, Some(node) in a capped strategy.
    let mut placed: Vec<Option<usize>> = vec![None; n];
    let mut used = vec![0u64; k];
    // moves[a * k + b]: accounts in `a` by the gain of moving them to `b`.
    let mut moves: Vec<BinaryHeap<(i64, Reverse<usize>)>> = vec![BinaryHeap::new(); k * k];
    let place =
        |i: usize, node: usize, moves: &mut Vec<BinaryHeap<_>>, placed: &mut Vec<Option<usize>>| {
            placed[i] = Some(node);
            let here = gain(i, capped[node]).expect("placed where allowed");
            for (other, &s) in capped.iter().enumerate() {
                if other != node {
                    if let Some(g) = gain(i, s) {
                        moves[node * k + other].push((g - here, Reverse(i)));
                    }
                }
            }
        };
    loop {
        // Best source edge into each node, skipping accounts already placed.
        let mut dist: Vec<Option<i64>> = vec![None; k];
        let mut from: Vec<Option<usize>> = vec![None; k];
        for node in 0..k {
            let list = &entries[node];
            while next_entry[node] < list.len() && placed[list[next_entry[node]].1].is_some() {
                next_entry[node] += 1;
            }
            dist[node] = list.get(next_entry[node]).map(|e| e.0);
        }
        // Best move edge between each pair, dropping stale heap entries.
        let mut edge: Vec<Option<(i64, usize)>> = vec![None; k * k];
        for a in 0..k {
            for b in 0..k {
                if a == b {
                    continue;
                }
                let heap = &mut moves[a * k + b];
                while let Some(&(_, Reverse(i))) = heap.peek() {
                    if placed[i] == Some(a) {
                        break;
                    }
                    heap.pop();
                }
                edge[a * k + b] = heap.peek().map(|&(w, Reverse(i))| (w, i));
            }
        }
        // Longest paths from the source (Bellman-Ford over k nodes).
        for _ in 1..k {
            let mut changed = false;
            for a in 0..k {
                let Some(da) = dist[a] else { continue };
                for b in 0..k {
                    if let Some((w, _)) = edge[a * k + b] {
                        if dist[b].is_none_or(|db| da + w > db) {
                            dist[b] = Some(da + w);
                            from[b] = Some(a);
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let end = (0..k)
            .filter(|&node| used[node] < capacity[capped[node]].expect("capped"))
            .filter_map(|node| dist[node].map(|d| (d, Reverse(node))))
            .max();
        let Some((best, Reverse(end))) = end else {
            break;
        };
        if best <= 0 {
            break;
        }
        // Walk the path back to the source, then apply its moves.
        let mut path = vec![end];
        let mut node = end;
        while let Some(previous) = from[node] {
            if path.contains(&previous) {
                break;
            }
            path.push(previous);
            node = previous;
        }
        path.reverse();
        let mut steps: Vec<(usize, usize)> = Vec::with_capacity(path.len());
        let first = entries[path[0]][next_entry[path[0]]].1;
        steps.push((first, path[0]));
        for pair in path.windows(2) {
            let (_, moved) = edge[pair[0] * k + pair[1]].expect("edge on the path");
            steps.push((moved, pair[1]));
        }
        used[end] += 1;
        for (i, node) in steps {
            place(i, node, &mut moves, &mut placed);
        }
    }
    for (i, node) in placed.iter().enumerate() {
        if let Some(node) = node {
            chosen[i] = capped[*node];
        }
    }
    chosen
}

/// Total value of an assignment, in cents.
pub fn total(values: &[Values], chosen: &[usize]) -> i64 {
    values
        .iter()
        .zip(chosen)
        .map(|(v, &s)| v[s].expect("chosen strategies are allowed"))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The best total over every assignment that respects the capacities.
    fn brute_force(values: &[Values], capacity: &[Option<u64>; K], strategies: usize) -> i64 {
        fn walk(
            i: usize,
            values: &[Values],
            capacity: &[Option<u64>; K],
            strategies: usize,
            used: &mut [u64; K],
            sum: i64,
            best: &mut i64,
        ) {
            if i == values.len() {
                *best = (*best).max(sum);
                return;
            }
            for s in 0..strategies {
                let Some(v) = values[i][s] else { continue };
                if capacity[s].is_some_and(|c| used[s] >= c) {
                    continue;
                }
                used[s] += 1;
                walk(i + 1, values, capacity, strategies, used, sum + v, best);
                used[s] -= 1;
            }
        }
        let mut best = i64::MIN;
        walk(0, values, capacity, strategies, &mut [0; K], 0, &mut best);
        best
    }

    fn respects(chosen: &[usize], values: &[Values], capacity: &[Option<u64>; K]) {
        let mut used = [0u64; K];
        for (i, &s) in chosen.iter().enumerate() {
            assert!(values[i][s].is_some(), "account {i} got a removed strategy");
            used[s] += 1;
        }
        for s in 0..K {
            if let Some(c) = capacity[s] {
                assert!(used[s] <= c, "strategy {s} over capacity");
            }
        }
    }

    #[test]
    fn matches_brute_force_on_small_instances() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for case in 0..600 {
            let accounts = rng.random_range(1..=7);
            let strategies = rng.random_range(2..=5);
            let mut capacity = [None; K];
            for slot in capacity.iter_mut().take(strategies).skip(1) {
                if rng.random::<f64>() < 0.7 {
                    *slot = Some(rng.random_range(0..=3));
                }
            }
            let values: Vec<Values> = (0..accounts)
                .map(|_| {
                    let mut v = [None; K];
                    v[0] = Some(rng.random_range(0..50));
                    for slot in v.iter_mut().take(strategies).skip(1) {
                        if rng.random::<f64>() < 0.8 {
                            // Coarse values make ties common, which is where mistakes hide.
                            *slot = Some(rng.random_range(-20..120) / 10 * 10);
                        }
                    }
                    v
                })
                .collect();
            let chosen = allocate(&values, &capacity);
            respects(&chosen, &values, &capacity);
            assert_eq!(
                total(&values, &chosen),
                brute_force(&values, &capacity, strategies),
                "case {case}: {values:?} with capacities {capacity:?}"
            );
        }
    }

    #[test]
    fn a_full_strategy_goes_to_the_account_that_gains_most_from_it() {
        // Both accounts are worth more called (index 1), but only one call is left;
        // account 1 has a good second choice (index 2), account 0 does not.
        let values = vec![
            [
                Some(0),
                Some(100),
                Some(10),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            ],
            [
                Some(0),
                Some(120),
                Some(90),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            ],
        ];
        let mut capacity = [None; K];
        capacity[1] = Some(1);
        capacity[2] = Some(1);
        let chosen = allocate(&values, &capacity);
        assert_eq!(chosen, vec![1, 2]);
        assert_eq!(total(&values, &chosen), 190);
    }

    #[test]
    fn without_capacities_each_account_takes_its_best_strategy() {
        let values = vec![
            [
                Some(5),
                Some(3),
                None,
                Some(9),
                None,
                None,
                None,
                None,
                None,
                None,
            ],
            [
                Some(5),
                Some(-3),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            ],
        ];
        assert_eq!(allocate(&values, &[None; K]), vec![3, 0]);
        let mut closed = [None; K];
        closed[3] = Some(0);
        assert_eq!(allocate(&values, &closed), vec![0, 0]);
    }
}
