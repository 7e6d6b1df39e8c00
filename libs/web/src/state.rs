use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use secrecy::ExposeSecret;
use tenantkit_accounts::PasswordHasher;
use tenantkit_billing::Billing;
use tenantkit_config::Settings;
use tenantkit_db::Database;
use tenantkit_storage::Storage;

use tenantkit_accounts::links::Links;

use crate::{csrf::CsrfKey, kv::Kv, usage::ApiAllowances};

/// What every handler may reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Database,
    /// Plans, entitlements and Stripe (checkout, portal, webhooks).
    pub billing: Billing,
    /// Tenants' files: metadata in PostgreSQL, bytes in the configured object store.
    pub storage: Storage,
    pub(crate) kv: Arc<Kv>,
    /// Each tenant's API requests per minute, from its entitlements, briefly remembered.
    pub(crate) api_allowances: Arc<ApiAllowances>,
    pub hasher: PasswordHasher,
    /// Emailed links and their signed tokens, from the configured public URL.
    pub links: Links,
    pub(crate) csrf: CsrfKey,
    shutting_down: Arc<AtomicBool>,
}

impl AppState {
    /// Fails with one line of text when a URL cannot be used.
    pub fn new(settings: Settings) -> Result<Self, String> {
        let db = Database::connect_lazy(&settings.database).map_err(|e| e.to_string())?;
        let redis = redis::Client::open(settings.redis.url.expose_secret())
            .map_err(|e| format!("redis.url: {e}"))?;
        let kv = Arc::new(Kv::new(redis, settings.redis.key_prefix.clone()));
        let billing = Billing::new(&settings.billing).map_err(|e| format!("billing: {e}"))?;
        let storage = Storage::new(&settings.storage, &settings.secret_key)
            .map_err(|e| format!("storage: {e}"))?;
        // Install the metrics recorder before the first request records anything.
        tenantkit_telemetry::metrics();
        Ok(Self {
            links: Links::new(&settings.server.public_url, &settings.secret_key),
            csrf: CsrfKey::new(&settings.secret_key),
            settings: Arc::new(settings),
            db,
            billing,
            storage,
            kv,
            api_allowances: Arc::default(),
            hasher: PasswordHasher::default(),
            shutting_down: Arc::new(AtomicBool::new(false)),
        })
    }

    /// From now on readiness fails, so load balancers stop sending new requests.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
