//! The org's API budget as Salesforce reports it on every response.
//!
//! `Sforce-Limit-Info: api-usage=18/5000` (used/limit over a rolling 24 hours), possibly followed
//! by `; per-app-api-usage=…` and `; api-bursts=…` parts that are ignored.

use serde::Serialize;

/// The response header carrying the budget.
pub const LIMIT_INFO_HEADER: &str = "sforce-limit-info";

/// API calls used and allowed over the org's rolling 24-hour window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ApiUsage {
    /// Calls used.
    pub used: u64,
    /// Calls allowed.
    pub limit: u64,
}

impl ApiUsage {
    /// Parses a `Sforce-Limit-Info` value; `None` when it holds no well-formed `api-usage=x/y`.
    pub fn parse_header(value: &str) -> Option<Self> {
        value.split([';', ',']).find_map(|part| {
            let (key, pair) = part.trim().split_once('=')?;
            if !key.trim().eq_ignore_ascii_case("api-usage") {
                return None;
            }
            let (used, limit) = pair.trim().split_once('/')?;
            Some(Self {
                used: used.trim().parse().ok()?,
                limit: limit.trim().parse().ok()?,
            })
        })
    }

    /// Calls left in the window.
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// The share of the allowance used, from 0.0 to 1.0 (1.0 when the limit is 0).
    pub fn fraction_used(&self) -> f64 {
        if self.limit == 0 {
            return 1.0;
        }
        self.used as f64 / self.limit as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_header_is_parsed() {
        assert_eq!(
            ApiUsage::parse_header("api-usage=18/5000"),
            Some(ApiUsage {
                used: 18,
                limit: 5000
            })
        );
    }

    #[test]
    fn extra_parts_are_ignored() {
        let v = "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app); api-bursts=1/750";
        assert_eq!(
            ApiUsage::parse_header(v),
            Some(ApiUsage {
                used: 25,
                limit: 5000
            })
        );
        let reordered = "per-app-api-usage=17/250(appName=x); api-usage=3/100";
        assert_eq!(ApiUsage::parse_header(reordered).map(|u| u.used), Some(3));
    }

    #[test]
    fn malformed_values_yield_nothing() {
        for v in [
            "",
            "api-usage=",
            "api-usage=x/5000",
            "api-usage=5",
            "per-app-api-usage=1/2",
        ] {
            assert_eq!(ApiUsage::parse_header(v), None, "{v}");
        }
    }

    #[test]
    fn remaining_and_fraction_are_derived() {
        let u = ApiUsage {
            used: 250,
            limit: 1000,
        };
        assert_eq!(u.remaining(), 750);
        assert!((u.fraction_used() - 0.25).abs() < f64::EPSILON);
    }
}
