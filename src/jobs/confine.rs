//! Every Redis key name a job influences, confined before the job runs.
//!
//! A job names keys the worker writes with its own rights on Redis: a `CreatePayment`'s
//! `reply_to` stream receives its events, and its `account` and `order_no` make the
//! payment's record key `<prefix>:payment:{<account>:<order_no>}` and its orphans key; a
//! `ProcessNotification`'s `account` picks the record it changes. The JSON Schemas fix what
//! they can (the characters: `order_no` carries no hash-tag brace, see
//! [`payworker_gateway::domain::OrderNo`]); the rest needs the worker's configuration, so it is checked
//! here, by the queue's validator, after decoding and before the handler claims anything:
//!
//! - `reply_to` lies inside the reply namespace ([`ReplyNamespace`]) and is no results stream;
//! - `account`, when given, is a configured account.
//!
//! A job that breaks a rule is dead-lettered as `invalid`, every problem listed, never
//! quoting the value given.

use super::reply_to::{ReplyNamespace, ReplyToError};
use super::{CreatePayment, ProcessNotification};
use payworker_queue::Invalid;

/// The rules, with what the worker is configured with.
#[derive(Debug, Clone)]
pub struct KeyRules {
    namespace: ReplyNamespace,
    results: Vec<String>,
    accounts: Vec<String>,
}

impl KeyRules {
    /// Rules for a worker with this reply namespace, these results streams
    /// (`results.streams`) and these account names (`gateway.accounts`).
    pub fn new(namespace: ReplyNamespace, results: Vec<String>, accounts: Vec<String>) -> Self {
        KeyRules {
            namespace,
            results,
            accounts,
        }
    }

    /// The reply namespace.
    pub fn namespace(&self) -> &ReplyNamespace {
        &self.namespace
    }

    /// Checks a `CreatePayment`'s `reply_to` and `account`.
    ///
    /// # Errors
    ///
    /// [`Invalid`] listing every problem, each as `field: what is allowed`.
    pub fn create_payment(&self, job: &CreatePayment) -> Result<(), Invalid> {
        let mut problems = Vec::new();
        self.account(job.account.as_deref(), &mut problems);
        if let Some(reply_to) = &job.reply_to
            && let Err(error) = self.reply_to(reply_to)
        {
            problems.push(format!("reply_to: {error}"));
        }
        done(problems)
    }

    /// Checks a `ProcessNotification`'s `account`.
    ///
    /// # Errors
    ///
    /// [`Invalid`] saying what is wrong.
    pub fn process_notification(&self, job: &ProcessNotification) -> Result<(), Invalid> {
        let mut problems = Vec::new();
        self.account(job.account.as_deref(), &mut problems);
        done(problems)
    }

    /// Checks a reply stream's name: inside the namespace, and not a results stream.
    ///
    /// # Errors
    ///
    /// [`ReplyToError`] saying what is allowed.
    pub fn reply_to(&self, name: &str) -> Result<(), ReplyToError> {
        self.namespace.check(name)?;
        if self.results.iter().any(|stream| stream == name) {
            return Err(ReplyToError::ResultsStream);
        }
        Ok(())
    }

    /// The account must be configured: it is part of the payment's key. Without one the
    /// default account is used, which exists whenever any does.
    fn account(&self, name: Option<&str>, problems: &mut Vec<String>) {
        let known = match name {
            Some(name) => self.accounts.iter().any(|a| a == name),
            None => !self.accounts.is_empty(),
        };
        if !known {
            problems.push(
                "account: must name an account configured in this worker \
                 (gateway.accounts.<name> in worker.yaml); this one is not"
                    .to_owned(),
            );
        }
    }
}

fn done(problems: Vec<String>) -> Result<(), Invalid> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Invalid(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use payworker_queue::Job;

    fn rules() -> KeyRules {
        KeyRules::new(
            ReplyNamespace::new("payworker:replies:", "payworker").unwrap(),
            vec!["payworker:{results}".into()],
            vec!["main".into(), "eu".into()],
        )
    }

    fn create(extra: serde_json::Value) -> CreatePayment {
        let mut job = serde_json::json!({
            "version": 1, "method": "host", "order_no": "ORD-1", "amount": "20.99",
            "currency": "EUR", "return_url": "https://shop.example.com/done",
        });
        for (k, v) in extra.as_object().unwrap() {
            job[k] = v.clone();
        }
        CreatePayment::decode(&job.to_string()).unwrap()
    }

    #[test]
    fn a_job_inside_the_rules_passes() {
        let rules = rules();
        for extra in [
            serde_json::json!({}),
            serde_json::json!({ "account": "eu" }),
            serde_json::json!({ "reply_to": "payworker:replies:shop" }),
            serde_json::json!({ "reply_to": "payworker:replies:{shop}:events", "account": "main" }),
        ] {
            rules
                .create_payment(&create(extra.clone()))
                .unwrap_or_else(|e| panic!("{extra}: {e}"));
        }
    }

    #[test]
    fn every_problem_is_listed_by_field_without_the_value() {
        let job = create(serde_json::json!({
            "account": "tenantb", "reply_to": "payworker:{create_payment:0}:delayed",
        }));
        let Invalid(detail) = rules().create_payment(&job).unwrap_err();
        assert!(
            detail.starts_with("account: must name an account configured"),
            "{detail}"
        );
        assert!(
            detail.contains(
                "; reply_to: must be a stream inside the reply namespace \"payworker:replies:\""
            ),
            "{detail}"
        );
        assert!(
            !detail.contains("tenantb") && !detail.contains("delayed"),
            "{detail}"
        );
    }

    #[test]
    fn a_results_stream_is_no_reply_stream() {
        let rules = KeyRules::new(
            ReplyNamespace::new("shop:", "payworker").unwrap(),
            vec!["shop:all".into()],
            vec!["main".into()],
        );
        assert_eq!(rules.reply_to("shop:all"), Err(ReplyToError::ResultsStream));
        rules.reply_to("shop:mine").unwrap();
    }

    #[test]
    fn a_notification_must_name_a_configured_account_if_it_names_one() {
        let job = |account: Option<&str>| {
            let mut value = serde_json::json!({
                "version": 1,
                "headers": { "account-id": "acct_1", "oncestr": "n", "timestamp": "1", "signture": "0".repeat(64) },
                "body": "{}",
                "received_at": "2026-11-26T10:00:00Z",
            });
            if let Some(account) = account {
                value["account"] = account.into();
            }
            ProcessNotification::decode(&value.to_string()).unwrap()
        };
        let rules = rules();
        rules.process_notification(&job(None)).unwrap();
        rules.process_notification(&job(Some("eu"))).unwrap();
        let Invalid(detail) = rules.process_notification(&job(Some("other"))).unwrap_err();
        assert!(detail.starts_with("account: "), "{detail}");
    }
}
