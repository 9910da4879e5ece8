//! What a credential may do: named scopes (API.md §1), the set a key carries, and the rights
//! (scopes plus price cap) that decide whether one credential may mint or manage another.

use std::collections::BTreeSet;
use std::fmt;

use crate::money::Amount;

/// One named permission. The route table declares which of these each endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    AgentsRead,
    AgentsWrite,
    AgentsDiscover,
    TasksRead,
    TasksWrite,
    HireCreate,
    HiringsRead,
    HiringsCancel,
    BalanceRead,
    DepositsCreate,
    WithdrawalsCreate,
    WebhooksWrite,
    ArtifactsRead,
    AccountRead,
    AccountWrite,
    /// The administrators' endpoints (and only for administrators' keys).
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 16] = [
        Scope::AgentsRead,
        Scope::AgentsWrite,
        Scope::AgentsDiscover,
        Scope::TasksRead,
        Scope::TasksWrite,
        Scope::HireCreate,
        Scope::HiringsRead,
        Scope::HiringsCancel,
        Scope::BalanceRead,
        Scope::DepositsCreate,
        Scope::WithdrawalsCreate,
        Scope::WebhooksWrite,
        Scope::ArtifactsRead,
        Scope::AccountRead,
        Scope::AccountWrite,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::AgentsRead => "agents:read",
            Scope::AgentsWrite => "agents:write",
            Scope::AgentsDiscover => "agents:discover",
            Scope::TasksRead => "tasks:read",
            Scope::TasksWrite => "tasks:write",
            Scope::HireCreate => "hire:create",
            Scope::HiringsRead => "hirings:read",
            Scope::HiringsCancel => "hirings:cancel",
            Scope::BalanceRead => "balance:read",
            Scope::DepositsCreate => "deposits:create",
            Scope::WithdrawalsCreate => "withdrawals:create",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::ArtifactsRead => "artifacts:read",
            Scope::AccountRead => "account:read",
            Scope::AccountWrite => "account:write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// The area of the product a scope belongs to, for grouping them where people choose.
    pub fn area(self) -> &'static str {
        match self {
            Scope::AgentsRead | Scope::AgentsWrite | Scope::AgentsDiscover => "Agents",
            Scope::TasksRead | Scope::TasksWrite | Scope::ArtifactsRead => "Tasks and artifacts",
            Scope::HireCreate | Scope::HiringsRead | Scope::HiringsCancel => "Hiring",
            Scope::BalanceRead | Scope::DepositsCreate | Scope::WithdrawalsCreate => "Money",
            Scope::WebhooksWrite => "Webhooks",
            Scope::AccountRead | Scope::AccountWrite => "Account",
            Scope::Admin => "Administration",
        }
    }

    /// Grants reading only: nothing it allows changes anything.
    pub fn is_read_only(self) -> bool {
        matches!(
            self,
            Scope::AgentsRead
                | Scope::AgentsDiscover
                | Scope::TasksRead
                | Scope::HiringsRead
                | Scope::BalanceRead
                | Scope::ArtifactsRead
                | Scope::AccountRead
        )
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes a key carries: everything (`["*"]`, the default) or a set (possibly empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scopes {
    All,
    Only(BTreeSet<Scope>),
}

impl Scopes {
    pub fn all() -> Scopes {
        Scopes::All
    }

    pub fn none() -> Scopes {
        Scopes::Only(BTreeSet::new())
    }

    pub fn allows(&self, scope: Scope) -> bool {
        match self {
            Scopes::All => true,
            Scopes::Only(set) => set.contains(&scope),
        }
    }

    /// True when every right of `other` is also one of ours.
    pub fn covers(&self, other: &Scopes) -> bool {
        match (self, other) {
            (Scopes::All, _) => true,
            (Scopes::Only(_), Scopes::All) => false,
            (Scopes::Only(mine), Scopes::Only(theirs)) => theirs.is_subset(mine),
        }
    }

    /// Parses a request's list: `"*"` alone or among others means everything; unknown names
    /// are returned as the error.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Scopes, String> {
        let mut set = BTreeSet::new();
        let mut all = false;
        for name in names {
            let name = name.as_ref().trim().to_ascii_lowercase();
            if name == "*" {
                all = true;
            } else {
                set.insert(Scope::parse(&name).ok_or(name)?);
            }
        }
        Ok(if all { Scopes::All } else { Scopes::Only(set) })
    }

    /// The stored form (a JSON array of names); unknown stored names are dropped, never widened.
    pub fn from_stored(json: &str) -> Scopes {
        let names: Vec<String> = serde_json::from_str(json).unwrap_or_default();
        if names.iter().any(|n| n == "*") {
            return Scopes::All;
        }
        Scopes::Only(names.iter().filter_map(|n| Scope::parse(n)).collect())
    }

    pub fn names(&self) -> Vec<String> {
        match self {
            Scopes::All => vec!["*".into()],
            Scopes::Only(set) => set.iter().map(|s| s.as_str().to_string()).collect(),
        }
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(&self.names()).unwrap_or_else(|_| "[]".into())
    }
}

/// Everything a credential can do: its scopes and the cap on what it may pay per hire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rights {
    pub scopes: Scopes,
    /// `None` = no cap.
    pub max_price_per_hire: Option<Amount>,
}

impl Rights {
    /// An agent key's rights over its agent, and a full-access user key's over its account.
    pub fn full() -> Rights {
        Rights { scopes: Scopes::All, max_price_per_hire: None }
    }

    /// True when `other` grants nothing these rights do not: its scopes are a subset of ours
    /// and its cap is not above ours (an uncapped credential is above every cap).
    pub fn cover(&self, other: &Rights) -> bool {
        let cap_ok = match (self.max_price_per_hire, other.max_price_per_hire) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs <= mine,
        };
        self.scopes.covers(&other.scopes) && cap_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(names: &[&str]) -> Scopes {
        Scopes::parse_list(names).unwrap()
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scopes::parse_list(&["agents:read", "nope"]), Err("nope".to_string()));
        assert_eq!(Scopes::parse_list(&["*", "agents:read"]), Ok(Scopes::All));
        let s = only(&["tasks:read", "agents:read"]);
        assert_eq!(Scopes::from_stored(&s.to_stored()), s);
        assert_eq!(Scopes::from_stored(r#"["agents:read","retired:scope"]"#), only(&["agents:read"]));
        assert_eq!(Scopes::from_stored("[]"), Scopes::none());
    }

    #[test]
    fn covering_is_a_subset_of_scopes_and_a_cap_not_above_ours() {
        let cap = |s: &str| Some(Amount::parse(s).unwrap());
        let full = Rights::full();
        let write = Rights { scopes: only(&["account:write"]), max_price_per_hire: None };
        let capped = Rights { scopes: Scopes::All, max_price_per_hire: cap("1.00") };
        assert!(full.cover(&write) && full.cover(&capped) && full.cover(&full));
        assert!(!write.cover(&full), "a scoped key does not cover a full-access one");
        assert!(!capped.cover(&full), "a capped key does not cover an uncapped one");
        assert!(capped.cover(&Rights { scopes: Scopes::All, max_price_per_hire: cap("0.50") }));
        assert!(!capped.cover(&Rights { scopes: Scopes::All, max_price_per_hire: cap("2.00") }));
        assert!(write.cover(&Rights { scopes: Scopes::none(), max_price_per_hire: None }));
        assert!(!Scopes::none().allows(Scope::AgentsRead));
    }
}
