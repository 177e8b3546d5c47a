//! The big store of scenarios 2, 3, 4 and 6: hash-chained events written
//! directly with COPY.

use super::*;

// ---------------------------------------------------------------------------
// The big store: hash-chained events written directly with COPY
// ---------------------------------------------------------------------------

pub(crate) struct BigStore {
    pub(crate) url: String,
    pub(crate) events: i64,
    /// (history size, fund id, wijk id)
    pub(crate) history: Vec<(u64, String, String)>,
}

pub(crate) struct Chain {
    pub(crate) previous: [u8; 32],
    pub(crate) position: i64,
    pub(crate) sequences: HashMap<String, i64>,
    pub(crate) rows: Vec<u8>,
    pub(crate) claims: Vec<u8>,
    pub(crate) funds: HashMap<String, Fund>,
}

impl Chain {
    pub(crate) fn push(
        &mut self,
        aggregate_type: &str,
        aggregate_id: &str,
        event_type: String,
        event_version: String,
        payload: Value,
    ) {
        self.position += 1;
        let sequence = self.sequences.entry(format!("{aggregate_type}/{aggregate_id}")).or_insert(0);
        *sequence += 1;
        let mut e = ChainedEvent {
            position: self.position,
            event_id: uuid::Uuid::now_v7().to_string(),
            recorded_at: Utc::now().trunc_subsecs(6),
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
            sequence: *sequence,
            event_type,
            event_version,
            payload,
            metadata: json!({"actor": "bench-fill", "role": "finance", "correlation_id": uuid::Uuid::new_v4().to_string()}),
            hash: String::new(),
        };
        self.previous = chain_hash(&self.previous, &e);
        e.hash = hex::encode(self.previous);
        let hash = e.hash.clone();
        for (i, field) in canonical_fields(&e).into_iter().chain([hash]).enumerate() {
            if i > 0 {
                self.rows.push(b'\t');
            }
            wijkbudget::projections::copy_escape(&field, &mut self.rows);
        }
        self.rows.push(b'\n');
        if let Some((kind, id)) = wijkbudget::domain::client_id_claim(&e.event_type, &e.payload) {
            for (i, field) in [kind.to_string(), id, e.aggregate_id.clone(), e.position.to_string()].iter().enumerate()
            {
                if i > 0 {
                    self.claims.push(b'\t');
                }
                wijkbudget::projections::copy_escape(field, &mut self.claims);
            }
            self.claims.push(b'\n');
        }
    }

    pub(crate) fn wijk(&mut self, id: &str) {
        let event =
            WijkEvent::WijkRegistered { wijk_id: WijkId::parse(id).expect("valid"), name: text(&format!("Wijk {id}")) };
        let payload = serde_json::to_value(&event).expect("serialises");
        self.push("wijk", id, event.event_type(), event.event_version(), payload);
    }

    pub(crate) fn fund(&mut self, fund_id: &str, event: FundEvent) {
        let payload = serde_json::to_value(&event).expect("serialises");
        self.push("fund", fund_id, event.event_type(), event.event_version(), payload);
        self.funds.entry(fund_id.to_string()).or_default().apply(event);
    }
}

pub(crate) fn text(s: &str) -> Text {
    Text::parse(s).expect("bench texts are valid")
}

pub(crate) fn establish(
    chain: &mut Chain,
    fund_id: &str,
    kind: FundKind,
    amount: &str,
    wijken: &[String],
    allocation: &str,
) {
    let adopted_on = NaiveDate::from_ymd_opt(2021, 11, 11).expect("date");
    let terms = FundTerms {
        fund_id: FundId::parse(fund_id).expect("valid"),
        year: Year::new(2022).expect("valid"),
        kind,
        name: text(&format!("Fonds {fund_id}")),
        amount: Amount::parse(amount).expect("valid"),
        decision: Decision {
            reference: text(if kind == FundKind::Amendement { AMENDMENT } else { "Begroting 2022" }),
            adopted_on,
        },
        purpose: text("Initiatieven van bewoners"),
    };
    chain.fund(fund_id, FundEvent::FundEstablished { booked_on: terms.booking_date(), terms });
    for w in wijken {
        chain.fund(
            fund_id,
            FundEvent::BudgetAllocated {
                wijk_id: WijkId::parse(w).expect("valid"),
                amount: Amount::parse(allocation).expect("valid"),
                reason: text("Raadsbesluit"),
                booked_on: NaiveDate::from_ymd_opt(2022, 1, 3).expect("date"),
            },
        );
    }
}

pub(crate) fn expense(chain: &mut Chain, fund_id: &str, wijk_id: &str) {
    let p = chain.position as u64 + 1;
    let cents = 100 + (p * 7919) % 9900;
    let details = ExpenseDetails {
        expense_id: ExpenseId::parse(&format!("exp-{p}")).expect("valid"),
        wijk_id: WijkId::parse(wijk_id).expect("valid"),
        amount: Amount::parse(&format!("{}.{:02}", cents / 100, cents % 100)).expect("valid"),
        initiative: text("Herinrichting Wegaplein"),
        theme: text(["groen", "spelen", "sociale cohesie", "veiligheid"][(p % 4) as usize]),
        booked_on: NaiveDate::from_ymd_opt(2022, 1, 10).expect("date") + chrono::Duration::days((p % 350) as i64),
        reference: text(&format!("factuur {p}")),
    };
    chain.fund(fund_id, FundEvent::ExpenseRecorded(details));
}

impl Bench {
    pub(crate) async fn fill_big_store(&mut self) -> anyhow::Result<BigStore> {
        let cfg = self.cfg.clone();
        let url = self.create_db("wb_bench_big").await?;
        let db = Db::connect(&url).await?;
        db.migrate().await?;
        db.close().await;
        let pool = PgPoolOptions::new().max_connections(2).connect(&url).await?;
        let started = Instant::now();

        let wijken: Vec<String> = names("wijk", WIJKEN).to_vec();
        let funds: Vec<String> = names("fund", FUNDS).to_vec();
        let history: Vec<(u64, String, String)> =
            cfg.history.iter().map(|&h| (h, format!("hist-{h}"), format!("wijk-h{h}"))).collect();
        let mut chain = Chain {
            previous: GENESIS,
            position: 0,
            sequences: HashMap::new(),
            rows: Vec::new(),
            claims: Vec::new(),
            funds: HashMap::new(),
        };

        let mut conn = pool.acquire().await?;
        let mut copy = conn
            .copy_in_raw(
                "COPY events (position, event_id, recorded_at, aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata, hash) FROM STDIN",
            )
            .await?;
        for w in wijken.iter().chain(history.iter().map(|(_, _, w)| w)) {
            chain.wijk(w);
        }
        for f in &funds {
            establish(&mut chain, f, FundKind::Begroting, "1000000000", &wijken, "100000000");
        }
        establish(&mut chain, AMENDMENT, FundKind::Amendement, "50000", &wijken, "5000");
        for (_, f, w) in &history {
            establish(&mut chain, f, FundKind::Begroting, "1000000000", std::slice::from_ref(w), "500000000");
        }

        // The expenses, interleaved so that every stream's events spread
        // over the log as they would over a year: at each position the
        // category furthest behind its share goes next.
        let setup = chain.position as u64;
        let history_total: u64 = history.iter().map(|(h, _, _)| h - 2).sum();
        let bulk = cfg.events.saturating_sub(setup + AMENDMENT_EXPENSES + history_total);
        // (total, done) per category: 0 = bulk, 1 = amendment, 2.. = history funds.
        let mut cats: Vec<(u64, u64)> = vec![(bulk, 0), (AMENDMENT_EXPENSES, 0)];
        cats.extend(history.iter().map(|(h, _, _)| (h - 2, 0)));
        let total: u64 = cats.iter().map(|c| c.0).sum();
        for _ in 0..total {
            let mut best = usize::MAX;
            for (i, &(t, d)) in cats.iter().enumerate() {
                // Furthest behind: the smallest (done + 1) / total.
                if d < t
                    && (best == usize::MAX
                        || (d as u128 + 1) * (cats[best].0 as u128) < (cats[best].1 as u128 + 1) * (t as u128))
                {
                    best = i;
                }
            }
            let n = cats[best].1;
            cats[best].1 += 1;
            match best {
                0 => expense(
                    &mut chain,
                    &funds[(n % FUNDS as u64) as usize],
                    &wijken[((n / FUNDS as u64) % WIJKEN as u64) as usize],
                ),
                1 => expense(&mut chain, AMENDMENT, &wijken[(n % WIJKEN as u64) as usize]),
                i => {
                    let (_, f, w) = &history[i - 2];
                    expense(&mut chain, f, w)
                }
            }
            if chain.rows.len() > 8 << 20 {
                copy.send(std::mem::take(&mut chain.rows)).await?;
            }
        }
        copy.send(std::mem::take(&mut chain.rows)).await?;
        copy.finish().await?;
        let mut copy = conn.copy_in_raw("COPY client_ids (kind, id, aggregate_id, position) FROM STDIN").await?;
        copy.send(std::mem::take(&mut chain.claims)).await?;
        copy.finish().await?;
        drop(conn);

        // Snapshots, as the ledger keeps them (whole fund state as JSON).
        for (fund_id, fund) in &chain.funds {
            let sequence = chain.sequences[&format!("fund/{fund_id}")];
            sqlx::query(
                "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) VALUES ('fund', $1, $2, $3, $4::json)",
            )
            .bind(fund_id)
            .bind(sequence)
            .bind(sequence / 100)
            .bind(serde_json::to_string(fund)?)
            .execute(&pool)
            .await?;
        }
        let events = chain.position;
        drop(chain);
        let fill_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for statement in
            ["VACUUM ANALYZE events", "VACUUM ANALYZE client_ids", "VACUUM ANALYZE snapshots", "CHECKPOINT"]
        {
            sqlx::raw_sql(statement).execute(&pool).await?;
        }
        let size: String =
            sqlx::query_scalar("SELECT pg_size_pretty(pg_total_relation_size('events'))").fetch_one(&pool).await?;
        pool.close().await;
        self.progress(format!(
            "big store: {events} events written in {fill_secs:.1} s by COPY (+{:.1} s VACUUM ANALYZE, CHECKPOINT); events table {size}",
            started.elapsed().as_secs_f64()
        ));
        self.report.insert(
            "big_store".into(),
            json!({"events": events, "fill_secs": fill_secs, "events_table_size": size, "bulk_expenses_per_fund": bulk / FUNDS as u64,
                   "history_funds": history.iter().map(|(h, f, w)| json!({"events": h, "fund": f, "wijk": w})).collect::<Vec<_>>()}),
        );
        Ok(BigStore { url, events, history })
    }
}

// ---------------------------------------------------------------------------
