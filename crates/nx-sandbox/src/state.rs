//! The state shared by every connection: configuration, clock, store, faults, log, tokens,
//! passwords and the webhook and callback URLs; and delivering to those URLs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{Account, SandboxConfig};
use crate::fault::Faults;
use crate::log::{LogEntry, RequestLog, Route};
use crate::loopback::LoopbackUrl;
use crate::outbound::{self, Delivery};
use crate::store::Store;
use crate::sync::lock;

pub(crate) struct Token {
    pub(crate) expires_ms: u64,
}

pub(crate) struct State {
    pub(crate) config: SandboxConfig,
    pub(crate) clock: Clock,
    pub(crate) store: Arc<Store>,
    pub(crate) faults: Faults,
    pub(crate) log: RequestLog,
    /// The messages mt accepted.
    pub(crate) outbox: crate::outbox::Outbox,
    pub(crate) base_url: String,
    pub(crate) oss_key: [u8; 32],
    pub(crate) rng: Mutex<fastrand::Rng>,
    pub(crate) tokens: Mutex<HashMap<String, Token>>,
    /// Current On-Prem passwords by user (`new_password` changes them).
    pub(crate) passwords: Mutex<HashMap<String, String>>,
    /// Users whose next login must set a new password ([`crate::OnPremUser::must_change_password`]).
    pub(crate) must_change_password: Mutex<HashSet<String>>,
    pub(crate) webhook_url: Mutex<Option<LoopbackUrl>>,
    pub(crate) callback_url: Mutex<Option<LoopbackUrl>>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) runtime: tokio::runtime::Handle,
}

impl State {
    pub(crate) fn account(&self, access_key: &[u8]) -> Option<&Account> {
        self.config
            .accounts
            .iter()
            .find(|a| a.access_key.as_bytes() == access_key)
    }

    pub(crate) fn random_u128(&self) -> u128 {
        lock(&self.rng).u128(..)
    }

    /// POSTs `body` to a configured URL (webhook or callback) and logs it.
    pub(crate) async fn deliver(
        &self,
        route: Route,
        url: Option<LoopbackUrl>,
        body: Bytes,
    ) -> Delivery {
        let Some(url) = url else {
            self.log.push(LogEntry {
                seq: 0,
                route,
                method: "POST".into(),
                // Nowhere to send it: the log line says so instead of showing an empty path.
                path: "-".into(),
                action: None,
                ts: None,
                status: None,
                code: None,
                latency: std::time::Duration::ZERO,
                fault: None,
                note: Some("no URL configured: not sent".into()),
            });
            return Delivery::NotConfigured;
        };
        let (delivery, latency) = outbound::post_json(&url, body).await;
        let (status, note) = match &delivery {
            Delivery::Delivered { status } => (Some(*status), None),
            Delivery::Failed(why) => (None, Some(why.clone())),
            Delivery::NotConfigured => (None, None),
        };
        self.log.push(LogEntry {
            seq: 0,
            route,
            method: "POST".into(),
            path: url.path().to_owned(),
            action: None,
            ts: None,
            status,
            code: None,
            latency,
            fault: None,
            note,
        });
        delivery
    }
}
