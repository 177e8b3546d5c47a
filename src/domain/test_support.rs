//! What the domain's given/when/then tests share: a wijk register that knows
//! oost-1223, centrum and zuid, and short constructors for parsed values.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use cqrs_es::test::TestFramework;

use super::fund::{Fund, FundServices, NoYearClosed, WijkDirectory};
use super::ids::{Text, WijkId};
use super::money::Amount;

struct KnownWijken(HashSet<&'static str>);

#[async_trait]
impl WijkDirectory for KnownWijken {
    async fn is_registered(&self, wijk_id: &WijkId) -> Result<bool, String> {
        Ok(self.0.contains(wijk_id.as_str()))
    }
}

pub fn services() -> FundServices {
    FundServices {
        wijken: Arc::new(KnownWijken(["oost-1223", "centrum", "zuid"].into_iter().collect())),
        years: Arc::new(NoYearClosed),
    }
}

pub fn fund() -> TestFramework<Fund> {
    TestFramework::with(services())
}

pub fn eur(s: &str) -> Amount {
    Amount::parse(s).unwrap()
}

pub fn text(s: &str) -> Text {
    Text::parse(s).unwrap()
}

pub fn wijk(s: &str) -> WijkId {
    WijkId::parse(s).unwrap()
}

pub fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}
