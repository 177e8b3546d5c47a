//! Failpoints: named places in the write path and the rebuild where a test
//! can make the process die on the spot, as a power cut or `kill -9` would,
//! to show that the store is consistent after a crash at exactly that step.
//!
//! `WIJKBUDGET_FAILPOINT=<name>` makes the first [`hit`] of that name abort
//! the process (no destructors, no flush, no rollback: the database sees the
//! connection drop). The variable is read once; without it a `hit` is one
//! load of an initialised `OnceLock`. Never set it on a ledger you care about.
//!
//! The failpoints, each with the test that kills the process there:
//! - `append-before-projection`, `append-before-commit`, `append-after-commit`:
//!   a group append, around projecting it inside its transaction (tests/faults.rs);
//! - `projector-before-commit`: the projector's own batch (tests/import.rs, tests/faults.rs);
//! - `rebuild-after-reset`: `wijkbudget rebuild`, with the read models wiped (tests/faults.rs);
//! - `import-before-commit`, `import-after-append`: an import's append of its copy (tests/import.rs).

use std::sync::OnceLock;

/// The environment variable naming the failpoint to die at.
pub const VARIABLE: &str = "WIJKBUDGET_FAILPOINT";

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED.get_or_init(|| std::env::var(VARIABLE).ok().filter(|name| !name.is_empty())).as_deref()
}

/// Dies here if the failpoint `name` is armed. The message on stderr lets a
/// test tell this death from any other.
pub fn hit(name: &str) {
    if armed() == Some(name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}
