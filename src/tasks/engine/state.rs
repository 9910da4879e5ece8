//! A task's state as types: its status, its payment status, and the hiring status the clients
//! read, each mapped from the other in one place.

use std::fmt;

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            /// Every stored name (the database's CHECK constraint is built from these).
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<$name, String> {
                $name::parse(&s).ok_or_else(|| format!("unknown {} `{s}`", stringify!($name)))
            }
        }
    };
}

text_enum!(
    /// `pending → claimed → in_progress → completed`, or `failed` / `cancelled`.
    Status {
        Pending = "pending",
        Claimed = "claimed",
        InProgress = "in_progress",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

text_enum!(
    /// Where the task's money stands.
    PaymentStatus {
        Unpaid = "unpaid",
        NotRequired = "not_required",
        Escrowed = "escrowed",
        Released = "released",
        Refunded = "refunded",
        Disputed = "disputed",
        Split = "split",
    }
);

text_enum!(
    /// What the Agrenting clients call a hiring's state.
    HiringStatus {
        PendingPayment = "pending_payment",
        Queued = "queued",
        InProgress = "in_progress",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
        Disputed = "disputed",
        Refunded = "refunded",
    }
);

impl Status {
    /// Not finished: the work may still be done, cancelled or moved.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Pending | Status::Claimed | Status::InProgress)
    }
}

impl PaymentStatus {
    /// The task's price is held (in the client's escrow, or the provider's pending).
    pub fn holds_money(self) -> bool {
        matches!(self, PaymentStatus::Escrowed | PaymentStatus::Disputed)
    }

    /// Nothing stops the work: paid, or nothing to pay.
    pub fn is_funded(self) -> bool {
        matches!(self, PaymentStatus::Escrowed | PaymentStatus::NotRequired)
    }
}

impl HiringStatus {
    /// The one mapping from a task's state to its hiring status (the SQL filter is derived
    /// from it too, so the two cannot disagree).
    pub fn of(status: Status, payment: PaymentStatus) -> HiringStatus {
        if payment == PaymentStatus::Disputed {
            return HiringStatus::Disputed;
        }
        match (status, payment) {
            (Status::Pending, PaymentStatus::Unpaid) => HiringStatus::PendingPayment,
            (Status::Pending, _) => HiringStatus::Queued,
            (Status::Claimed | Status::InProgress, _) => HiringStatus::InProgress,
            // A delivered hiring refunded by a dispute ruling.
            (Status::Completed, PaymentStatus::Refunded) => HiringStatus::Refunded,
            (Status::Completed, _) => HiringStatus::Completed,
            (Status::Failed, _) => HiringStatus::Failed,
            (Status::Cancelled, _) => HiringStatus::Cancelled,
        }
    }

    /// Nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            HiringStatus::Completed
                | HiringStatus::Failed
                | HiringStatus::Cancelled
                | HiringStatus::Disputed
                | HiringStatus::Refunded
        )
    }

    /// Every (status, payment status) that shows as this hiring status.
    pub fn states(self) -> Vec<(Status, PaymentStatus)> {
        let mut out = Vec::new();
        for status in Status::ALL {
            for payment in PaymentStatus::ALL {
                if HiringStatus::of(*status, *payment) == self {
                    out.push((*status, *payment));
                }
            }
        }
        out
    }

    /// A SQL condition selecting the tasks with this hiring status (values are our own names).
    pub fn sql_condition(self) -> String {
        let pairs: Vec<String> = self
            .states()
            .into_iter()
            .map(|(s, p)| format!("(status = '{}' AND payment_status = '{}')", s.as_str(), p.as_str()))
            .collect();
        if pairs.is_empty() { "1 = 0".into() } else { format!("({})", pairs.join(" OR ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(*s));
        }
        for p in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(p.as_str()), Some(*p));
        }
        assert_eq!(Status::parse("done"), None);
    }

    #[test]
    fn every_task_state_has_one_hiring_status_and_the_filter_agrees() {
        let mut covered = 0;
        for h in HiringStatus::ALL {
            for (s, p) in h.states() {
                assert_eq!(HiringStatus::of(s, p), *h);
                covered += 1;
            }
        }
        assert_eq!(covered, Status::ALL.len() * PaymentStatus::ALL.len(), "each state maps to exactly one");
        assert!(HiringStatus::Refunded.sql_condition().contains("'refunded'"));
        assert_eq!(HiringStatus::of(Status::Completed, PaymentStatus::Refunded), HiringStatus::Refunded);
        assert_eq!(HiringStatus::of(Status::Pending, PaymentStatus::Unpaid), HiringStatus::PendingPayment);
    }
}
