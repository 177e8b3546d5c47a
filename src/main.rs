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

/// mimalloc's `arena_eager_commit` option: its place in `mi_option_e` of
/// the mimalloc version `libmimalloc-sys` builds (v3), which that crate
/// does not name.
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Runs before `main`, and so before the first allocation reserves
/// mimalloc's arena: the arena's memory is committed as it is used. By
/// default mimalloc commits its arena up front on Linux and does not give
/// freed pages back, which doubled the server's resident memory in the
/// writes bench (23 to 43 MB) and the rebuild's (43 to 80 MB); committed on
/// demand they stay at 25 and 51 MB for the same CPU.
#[used]
#[cfg_attr(target_os = "linux", link_section = ".init_array")]
static COMMIT_ON_DEMAND: extern "C" fn() = commit_on_demand;

extern "C" fn commit_on_demand() {
    // SAFETY: sets one option's value; it takes any value, and nothing
    // else runs yet.
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
    /// The option is set before anything reads it (its default is 2).
    #[test]
    fn mimalloc_commits_its_arena_on_demand() {
        // SAFETY: reads one option's value.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(super::ARENA_EAGER_COMMIT) }, 0);
    }
}
