//! The scopes an AI assistant's key needs for the hirer tools, derived from the tools' own
//! guards (the route table through `mirror::Rest`, and the GitHub token tools' scopes): the
//! dashboard's "AI assistant hiring" key preset.

use std::collections::BTreeSet;

use crate::auth::scope::Scope;

/// The fewest scopes with which every hirer tool passes its guard: each mirrored endpoint's
/// any-of list from the route table (an endpoint that one scope alone opens first, then each
/// other endpoint by its first scope unless one already chosen opens it), plus the GitHub token
/// tools' own. The dashboard's "AI assistant hiring" key preset.
pub fn hirer_scopes() -> BTreeSet<Scope> {
    let mut needs: Vec<Vec<Scope>> = super::hirer::MIRRORED
        .iter()
        .chain(&super::follow::MIRRORED)
        .map(|rest| rest.access().scopes())
        .filter(|any_of| !any_of.is_empty())
        .collect();
    needs.extend(super::github::SCOPES.iter().map(|s| vec![*s]));
    needs.sort_by_key(Vec::len);
    let mut chosen = BTreeSet::new();
    for any_of in needs {
        if !any_of.iter().any(|s| chosen.contains(s)) {
            chosen.insert(any_of[0]);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hirer_scopes_open_every_tool_and_no_more() {
        let chosen = hirer_scopes();
        let names: Vec<&str> = chosen.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "agents:discover",
                "hire:create",
                "hirings:read",
                "hirings:cancel",
                "balance:read",
                "deposits:create",
                "account:read",
                "account:write"
            ]
        );
        let caller = |scopes: BTreeSet<Scope>| crate::auth::Caller {
            credential: crate::auth::caller::Credential::Browser { session_id: "t".into() },
            user: Some(crate::auth::caller::UserCtx { id: "u".into(), is_admin: false }),
            agent: None,
            scopes: crate::auth::scope::Scopes::Only(scopes),
            max_price_per_hire: None,
        };
        for rest in super::super::hirer::MIRRORED.iter().chain(&super::super::follow::MIRRORED) {
            assert!(rest.check(&caller(chosen.clone())).is_ok(), "{rest:?}");
        }
        // Each one is needed: without it some tool is refused.
        for scope in &chosen {
            let mut fewer = chosen.clone();
            fewer.remove(scope);
            let refused = super::super::hirer::MIRRORED
                .iter()
                .chain(&super::super::follow::MIRRORED)
                .any(|rest| rest.check(&caller(fewer.clone())).is_err())
                || super::super::github::SCOPES.contains(scope);
            assert!(refused, "{scope} is not needed");
        }
    }
}
