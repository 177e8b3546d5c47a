//! Start-up only: parse the command line, set up logging, run.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: the service and the rebuild make
/// many small, short-lived allocations (a request's JSON, a planned row's
/// cells), and glibc's bookkeeping for them (`malloc_consolidate`,
/// `_int_free`) was about a third of a rebuild's CPU. benches/RESULTS.md
/// (ninth session) has the measurements.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `arena_eager_commit` option: its place in `mi_option_e`
/// (4 in both the v3 header `libmimalloc-sys` builds by default and the v2
/// one), which that crate does not name. Check it again when Cargo.lock
/// moves `libmimalloc-sys` to a new mimalloc.
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Runs before `main`, single-threaded, and so before Rust's first
/// allocation reserves mimalloc's arena: the arena's memory is committed
/// as it is used. By default mimalloc commits the whole arena when it
/// reserves it wherever the system overcommits memory, as Linux does by
/// default. Measured, not explained: that nearly doubled the server's peak
/// resident memory in the writes bench (23 to 43 MB) and the rebuild's
/// (43 to 80 MB), and committed on demand they stay at 25 and 50 MB for
/// the same CPU. The option being set here, `MIMALLOC_ARENA_EAGER_COMMIT`
/// in the environment no longer changes it.
#[used]
#[cfg_attr(target_os = "linux", link_section = ".init_array")]
static COMMIT_ON_DEMAND: extern "C" fn() = commit_on_demand;

extern "C" fn commit_on_demand() {
    // SAFETY: a plain store into mimalloc's option table, which takes any
    // value; before `main` no other thread exists to race with it.
    unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0) }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Every line carries the request id through the request span.
    // WIJKBUDGET_LOG=json gives one JSON object per line for log shippers.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("WIJKBUDGET_LOG").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
    wijkbudget::cli::run(wijkbudget::cli::Cli::parse()).await
}

#[cfg(test)]
mod tests {
    /// The function in `.init_array` ran: the option reads 0, not its
    /// default 2. (That 4 is the right option is the constant's own claim.)
    #[cfg(target_os = "linux")]
    #[test]
    fn mimalloc_commits_its_arena_on_demand() {
        // SAFETY: reads one option's value.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(super::ARENA_EAGER_COMMIT) }, 0);
    }
}
