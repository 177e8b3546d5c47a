//! SQLite on a full disk: writes fail with a clear problem and leave
//! nothing half-written, reads still work, and writes succeed again once
//! there is room. The disk is a 4 MB tmpfs the test mounts (it runs as
//! root, as `.ci/run` does).

mod common;

use std::io::Write;

use common::server::{request, serve, wijkbudget};

/// A small tmpfs, unmounted however the test ends.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            mounted.success(),
            "this test mounts a 4 MB tmpfs and needs root for it; run it as root, as .ci/run does"
        );
        Self { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn on_a_full_disk_writes_fail_clearly_store_nothing_and_succeed_again_once_there_is_room() {
    let disk = SmallDisk::mount();
    let url = format!("sqlite://{}", disk.dir.path().join("ledger.db").display());
    let created = wijkbudget(&["token", "create", "--role", "finance", "--database", &url]);
    assert!(created.status.success(), "{created:?}");
    let token = String::from_utf8(created.stdout).unwrap().trim().to_string();
    let server = serve(&url, &[]).await;
    let addr = server.addr.clone();
    let post = |path: &'static str, body: String, key: Option<&'static str>| {
        let (addr, token) = (addr.clone(), token.clone());
        async move { request(&addr, "POST", path, &token, Some(&body), key).await }
    };
    assert_eq!(post("/wijken", r#"{"wijk_id":"oost-1223","name":"Oost 1223"}"#.into(), None).await.status, 201);
    let fund = r#"{"fund_id":"begroting-2022","year":2022,"kind":"begroting","name":"Wijkbudgetten 2022",
        "amount":"10000.00","decision":{"reference":"Begroting 2022","adopted_on":"2021-11-11"},"purpose":"Initiatieven"}"#;
    assert_eq!(post("/funds", fund.into(), None).await.status, 201);
    let allocation = r#"{"wijk_id":"oost-1223","amount":"5000.00","reason":"Jaarbudget"}"#;
    assert_eq!(post("/funds/begroting-2022/allocations", allocation.into(), Some("a-1")).await.status, 201);
    let head = |addr: String, token: String| async move {
        let answer = request(&addr, "GET", "/integrity", &token, None, None).await;
        answer.body.split("\"head\":\"").nth(1).and_then(|h| h.split(':').next()).unwrap().parse::<i64>().unwrap()
    };
    let before = head(addr.clone(), token.clone()).await;

    // Fill the disk to the last byte.
    let filler_path = disk.dir.path().join("filler");
    let mut filler = std::fs::File::create(&filler_path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while filler.write_all(&block).is_ok() {}
    while filler.write_all(&block[..512]).is_ok() {}
    drop(filler);

    let expense = r#"{"expense_id":"e-1","wijk_id":"oost-1223","fund_id":"begroting-2022","amount":"100.00",
        "initiative":"Bankjes","theme":"ontmoeten","booked_on":"2022-06-01","reference":"factuur 1"}"#;
    let mut refused = None;
    // A few tries: the first may still fit in pages SQLite already has.
    for i in 0..50 {
        let body = expense.replace("e-1", &format!("e-{i}"));
        let answer = post("/expenses", body, None).await;
        if answer.status != 201 {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("a write on a full disk is refused");
    assert!(
        [503, 507].contains(&refused.status),
        "a full disk is a 503 or 507, not {}: {}",
        refused.status,
        refused.body
    );
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));
    let booked_while_filling = head(addr.clone(), token.clone()).await - before;

    // Reads still work, and see no half-written booking.
    let budget = request(&addr, "GET", "/wijken/oost-1223/budget", &token, None, None).await;
    assert_eq!(budget.status, 200, "{}", budget.body);
    let spent = format!("\"amount_spent\":\"{}.00\"", 100 * booked_while_filling);
    assert!(budget.body.contains(&spent), "only whole bookings count: {} ({spent})", budget.body);

    // Room again: the same write succeeds.
    std::fs::remove_file(&filler_path).unwrap();
    let again = post("/expenses", expense.replace("e-1", "e-again"), None).await;
    assert_eq!(again.status, 201, "{}", again.body);
    drop(server);
    let verified = wijkbudget(&["verify", "--database", &url]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
}
