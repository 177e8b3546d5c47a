//! Who may use the lifecycle endpoints.

use super::*;

// ---------------------------------------------------------------------------
// 4. Who may use the lifecycle endpoints
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_finance_writes_the_lifecycle_council_reads_reports_and_a_wijkregisseur_reads_its_own_commitments() {
    let mut all_failures: Vec<String> = Vec::new();
    for backend in BACKENDS {
        let label = format!("{backend:?}");
        let api = Api::start(backend).await;
        seed(&api).await;
        api.written("/commitments", &commitment_body("SUB-OOST", "oost-1221", "100.00", "groen", "2022-03-01"), 201)
            .await;
        api.written("/commitments", &commitment_body("SUB-CENTRUM", "centrum", "100.00", "spelen", "2022-03-01"), 201)
            .await;
        api.post("/years/2022/close", &close_body(&[])).await.expect(200);

        let writes: Vec<(String, Value)> = vec![
            ("/commitments".into(), commitment_body("SUB-NEW", "oost-1221", "1.00", "groen", "2022-03-01")),
            ("/commitments/SUB-OOST/payments".into(), payment_body("SUB-OOST-betaling-1", "1.00", "2023-01-10")),
            ("/commitments/SUB-OOST/settlement".into(), settlement_body(json!("50.00"), "2023-01-10")),
            ("/commitments/SUB-OOST/repayments".into(), repayment_body("1.00", "2023-01-10")),
            ("/commitments/SUB-OOST/withdrawal".into(), withdrawal_body(false, "2023-01-10")),
            (format!("/funds/{FUND}/transfers"), transfer_body("oost-1221", "centrum", "1.00", "2022-08-01")),
            ("/years/2023/close".into(), close_body(&[])),
        ];
        let mut failures = Vec::new();
        for who in [Who::Council, Who::Auditor, Who::Regisseur] {
            for (path, body) in &writes {
                failures.extend(api.refused(who, Method::POST, path, Some(body), 403, "forbidden").await);
            }
        }

        // Council and auditor read every report; a wijkregisseur none.
        let reports =
            ["/reports/themes?year=2022", "/reports/stale-commitments?as_of=2022-12-31", "/years/2022/close-statement"];
        for path in reports {
            for who in [Who::Council, Who::Auditor] {
                let reply = api.call(who, Method::GET, path, None, None).await;
                if reply.status != StatusCode::OK {
                    failures.push(format!("{}: {} {}", reply.what, reply.status, reply.text()));
                }
            }
            let csv = api.call(Who::Council, Method::GET, path, None, Some("text/csv")).await;
            if csv.status != StatusCode::OK || !csv.content_type.starts_with("text/csv") {
                failures.push(format!("{} as CSV: {} {}", csv.what, csv.status, csv.content_type));
            }
            failures.extend(api.refused(Who::Regisseur, Method::GET, path, None, 403, "forbidden").await);
        }
        let stale = api
            .call(Who::Council, Method::GET, "/reports/stale-commitments?as_of=2022-12-31", None, None)
            .await
            .expect(200);
        assert_eq!(stale.as_array().map(Vec::len), Some(2), "{label}: council sees every stale commitment: {stale}");

        // A wijkregisseur reads the commitments of its own wijk only; council reads any.
        let own = api.call(Who::Regisseur, Method::GET, "/commitments/SUB-OOST", None, None).await.expect(200);
        assert_eq!(own["wijk_id"], "oost-1221", "{label}: {own}");
        failures
            // Another wijk's commitment answers as one that does not exist (issue 12: no id probing).
            .extend(
                api.refused(Who::Regisseur, Method::GET, "/commitments/SUB-CENTRUM", None, 404, "unknown_commitment")
                    .await,
            );
        api.call(Who::Council, Method::GET, "/commitments/SUB-CENTRUM", None, None).await.expect(200);
        api.call(Who::Auditor, Method::GET, "/commitments/SUB-OOST", None, None).await.expect(200);

        api.finish().await;
        all_failures.extend(failures.into_iter().map(|f| format!("{label}: {f}")));
    }
    assert!(all_failures.is_empty(), "{} access check(s) went wrong:\n{}", all_failures.len(), all_failures.join("\n"));
}
