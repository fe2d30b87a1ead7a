//! Worker threads for the kernels that split a page into bands of rows.
//!
//! A call with `threads == 1` runs on the calling thread only; otherwise the whole call runs in
//! one rayon pool of that size, and the band loops inside it go parallel.

use crate::error::KernelError;
use rayon::prelude::*;

/// Largest thread count accepted.
pub const MAX_THREADS: usize = 64;

/// Checks a thread count: 1 to [`MAX_THREADS`].
pub(crate) fn check_threads(threads: usize) -> Result<(), KernelError> {
    if (1..=MAX_THREADS).contains(&threads) {
        Ok(())
    } else {
        Err(KernelError::Argument(format!(
            "threads must be between 1 and {MAX_THREADS}, got {threads}"
        )))
    }
}

/// Runs `job` with `threads` workers available to [`map_bands`].
pub(crate) fn with_pool<R, F>(threads: usize, job: F) -> Result<R, KernelError>
where
    R: Send,
    F: FnOnce() -> Result<R, KernelError> + Send,
{
    check_threads(threads)?;
    if threads == 1 {
        return job();
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| KernelError::Argument(format!("cannot start {threads} threads: {e}")))?
        .install(job)
}

/// Applies `f` to every item, in parallel when `parallel` (inside [`with_pool`]).
pub(crate) fn map_bands<T, R, F>(items: Vec<T>, parallel: bool, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync + Send,
{
    if parallel {
        items.into_par_iter().map(f).collect()
    } else {
        items.into_iter().map(f).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_run_jobs_and_check_counts() {
        let squares = with_pool(3, || Ok(map_bands((0..10).collect(), true, |i: i32| i * i)));
        assert_eq!(squares.unwrap()[9], 81);
        assert!(with_pool(0, || Ok(())).is_err());
        assert!(with_pool(MAX_THREADS + 1, || Ok(())).is_err());
        assert_eq!(
            with_pool(1, || Ok(map_bands(vec![2], false, |i: i32| i + 1))).unwrap(),
            [3]
        );
    }
}
