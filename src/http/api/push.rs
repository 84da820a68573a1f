//! Local API routes of the push side: companies, contacts, company products, activities, the
//! outbox and its dead letters, "Sync to Salesforce" per record, and the OpenAPI document.
//!
//! Every write stores the record and its outbox entry in one store transaction and answers only
//! once that transaction is durable; nothing is sent to Salesforce from a handler (the outbox
//! worker does that). Validation errors answer 422 `{"error":{"field","message"}}`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::{
    Activity, ActivityKind, Company, CompanyProduct, Contact, OrgId, OwnershipStatus, PushAs,
    normalize,
};
use crate::http::AppState;
use crate::store::{
    LocalRef, OutboxEntry, OutboxState, Provenance, RecordKind, Store, StoreError, Tx, TxAbort,
    TxError,
};

/// The push side's routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/companies", get(list_companies).post(create_company))
        .route("/companies/{id}", patch(update_company))
        .route("/contacts", get(list_contacts).post(create_contact))
        .route("/contacts/{id}", patch(update_contact))
        .route("/company-products", get(list_products).post(create_product))
        .route("/company-products/{id}", patch(update_product))
        .route("/activities", get(list_activities).post(create_activity))
        .route("/companies/{id}/sync", post(sync_company))
        .route("/contacts/{id}/sync", post(sync_contact))
        .route("/company-products/{id}/sync", post(sync_product))
        .route("/activities/{id}/sync", post(sync_activity))
        .route("/outbox", get(list_outbox))
        .route("/outbox/{id}/retry", post(retry_entry))
        .route("/outbox/{id}/discard", post(discard_entry))
}

// ---------------------------------------------------------------- errors

/// What a push-side request can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushApiError {
    /// A field is missing or wrong: 422 naming the field.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault (`body` when the JSON itself is broken).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No such record or entry: 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request does not fit the entry's state: 409.
    #[error("{0}")]
    Conflict(&'static str),
    /// The store failed: 503, the cause logged.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The body of a validation error.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// The error.
    pub(crate) error: ErrorDetail,
}

/// A validation error: which field and why.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// The field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) field: Option<String>,
    /// What is wrong.
    pub(crate) message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> PushApiError {
    PushApiError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

impl<E: Into<PushApiError>> From<TxError<E>> for PushApiError {
    fn from(e: TxError<E>) -> Self {
        match e {
            TxError::Store(s) => Self::Store(s),
            TxError::Abort(e) => e.into(),
        }
    }
}

impl IntoResponse for PushApiError {
    fn into_response(self) -> Response {
        let (status, field, message) = match self {
            Self::Invalid { field, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, Some(field), message)
            }
            Self::NotFound(what) => (StatusCode::NOT_FOUND, None, format!("{what} not found")),
            Self::Conflict(why) => (StatusCode::CONFLICT, None, why.to_string()),
            Self::Store(e) => {
                tracing::error!(error = %e, "store failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "the store is unavailable".to_string(),
                )
            }
        };
        let body = ErrorBody {
            error: ErrorDetail { field, message },
        };
        (status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, PushApiError>;

/// Parses a JSON body into `T`; a failure names the field at fault.
fn parse_body<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid("body", format!("not valid JSON: {e}")))?;
    let err = match serde_json::from_value::<T>(value.clone()) {
        Ok(t) => return Ok(t),
        Err(e) => e.to_string(),
    };
    for marker in ["missing field `", "unknown field `"] {
        if let Some(rest) = err.split(marker).nth(1) {
            let field = rest.split('`').next().unwrap_or("body");
            return Err(invalid(field, err.clone()));
        }
    }
    // A wrongly typed value: the field that, set to null, makes the body acceptable (or gives a
    // different error that is not about a null) is the one at fault.
    if let Value::Object(map) = &value {
        let nulled = |key: &String| {
            let mut without = map.clone();
            without.insert(key.clone(), Value::Null);
            serde_json::from_value::<T>(Value::Object(without)).map_err(|e| e.to_string())
        };
        if let Some(key) = map.keys().find(|k| nulled(k).is_ok()) {
            return Err(invalid(key, err));
        }
        let mentioned = map.iter().find(|(_, v)| {
            let shown = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            err.contains(&format!("`{shown}`"))
        });
        if let Some((key, _)) = mentioned {
            return Err(invalid(key, err));
        }
        let culprit = map.keys().find(|k| match nulled(k) {
            Ok(_) => true,
            Err(e) => e != err && !e.contains("null"),
        });
        if let Some(key) = culprit {
            return Err(invalid(key, err));
        }
    }
    Err(invalid("body", err))
}

// ---------------------------------------------------------------- org selection

fn org_for(state: &AppState, given: Option<&str>) -> ApiResult<OrgId> {
    let all = state.connections.all();
    match given {
        Some(raw) => {
            let org = OrgId::parse(raw).map_err(|e| invalid("org_id", e.to_string()))?;
            all.iter()
                .find(|c| c.org_id == org)
                .map(|c| c.org_id.clone())
                .ok_or_else(|| invalid("org_id", "no connection is configured for this org"))
        }
        None => match all {
            [one] => Ok(one.org_id.clone()),
            [] => Err(invalid("org_id", "no connection is configured")),
            _ => Err(invalid(
                "org_id",
                "required when several orgs are configured",
            )),
        },
    }
}

/// `?org_id=` on reads.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct OrgQuery {
    /// The org (optional when one org is configured).
    pub(crate) org_id: Option<String>,
}

// ---------------------------------------------------------------- views

/// A company.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CompanyView {
    /// Local id.
    pub(crate) id: u64,
    /// The org.
    pub(crate) org_id: String,
    /// Name.
    pub(crate) name: String,
    /// Bare domain.
    pub(crate) domain: Option<String>,
    /// Website.
    pub(crate) website: Option<String>,
    /// Industry.
    pub(crate) industry: Option<String>,
    /// Annual revenue.
    pub(crate) annual_revenue: Option<f64>,
    /// Employees.
    pub(crate) employees: Option<i64>,
    /// The Account id, once pushed or linked.
    pub(crate) salesforce_id: Option<String>,
    /// Last local change.
    pub(crate) updated_at: DateTime<Utc>,
}

impl From<Company> for CompanyView {
    fn from(c: Company) -> Self {
        Self {
            id: c.id,
            org_id: c.org_id.to_string(),
            name: c.name,
            domain: c.domain,
            website: c.website,
            industry: c.industry,
            annual_revenue: c.annual_revenue,
            employees: c.employees,
            salesforce_id: c.salesforce_id.map(|s| s.to_string()),
            updated_at: c.updated_at,
        }
    }
}

/// A contact.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ContactView {
    /// Local id.
    pub(crate) id: u64,
    /// The org.
    pub(crate) org_id: String,
    /// Local company id.
    pub(crate) company_id: Option<u64>,
    /// Given name.
    pub(crate) first_name: Option<String>,
    /// Family name.
    pub(crate) last_name: String,
    /// Email.
    pub(crate) email: Option<String>,
    /// Title.
    pub(crate) title: Option<String>,
    /// Phone.
    pub(crate) phone: Option<String>,
    /// The Contact or Lead id, once pushed or linked.
    pub(crate) salesforce_id: Option<String>,
    /// `contact` or `lead`.
    pub(crate) salesforce_kind: Option<String>,
    /// Last local change.
    pub(crate) updated_at: DateTime<Utc>,
}

fn enum_text<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

impl From<Contact> for ContactView {
    fn from(c: Contact) -> Self {
        Self {
            id: c.id,
            org_id: c.org_id.to_string(),
            company_id: c.company_id,
            first_name: c.first_name,
            last_name: c.last_name,
            email: c.email,
            title: c.title,
            phone: c.phone,
            salesforce_id: c.salesforce_id.map(|s| s.to_string()),
            salesforce_kind: c.salesforce_kind.as_ref().map(enum_text),
            updated_at: c.updated_at,
        }
    }
}

/// A company product.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProductView {
    /// Local id.
    pub(crate) id: u64,
    /// The org.
    pub(crate) org_id: String,
    /// Local company id.
    pub(crate) company_id: u64,
    /// Product name.
    pub(crate) product: String,
    /// PROSPECT, OPPORTUNITY, CUSTOMER or LOST.
    pub(crate) status: String,
    /// Deal size.
    pub(crate) opportunity_size: Option<f64>,
    /// Internal funnel stage.
    pub(crate) stage: Option<String>,
    /// Expected close date.
    pub(crate) close_date: Option<NaiveDate>,
    /// The Opportunity id, once pushed.
    pub(crate) salesforce_opportunity_id: Option<String>,
    /// Last local change.
    pub(crate) updated_at: DateTime<Utc>,
}

impl From<CompanyProduct> for ProductView {
    fn from(p: CompanyProduct) -> Self {
        Self {
            id: p.id,
            org_id: p.org_id.to_string(),
            company_id: p.company_id,
            product: p.product,
            status: enum_text(&p.status),
            opportunity_size: p.opportunity_size,
            stage: p.stage,
            close_date: p.close_date,
            salesforce_opportunity_id: p.salesforce_opportunity_id.map(|s| s.to_string()),
            updated_at: p.updated_at,
        }
    }
}

/// An activity.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActivityView {
    /// Local id.
    pub(crate) id: u64,
    /// The org.
    pub(crate) org_id: String,
    /// `email_sent` or `meeting_booked`.
    pub(crate) kind: String,
    /// Local contact id.
    pub(crate) contact_id: Option<u64>,
    /// Local company id.
    pub(crate) company_id: Option<u64>,
    /// Subject.
    pub(crate) subject: String,
    /// Body or description.
    pub(crate) description: Option<String>,
    /// When it happened.
    pub(crate) occurred_at: DateTime<Utc>,
    /// Meeting start.
    pub(crate) starts_at: Option<DateTime<Utc>>,
    /// Meeting end.
    pub(crate) ends_at: Option<DateTime<Utc>>,
    /// The Task or Event id, once pushed.
    pub(crate) salesforce_id: Option<String>,
}

impl From<Activity> for ActivityView {
    fn from(a: Activity) -> Self {
        Self {
            id: a.id,
            org_id: a.org_id.to_string(),
            kind: enum_text(&a.kind),
            contact_id: a.contact_id,
            company_id: a.company_id,
            subject: a.subject,
            description: a.description,
            occurred_at: a.occurred_at,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            salesforce_id: a.salesforce_id.map(|s| s.to_string()),
        }
    }
}

/// An outbox entry (a record's pending push, or a dead letter).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OutboxEntryView {
    /// Entry id.
    pub(crate) id: u64,
    /// The org.
    pub(crate) org_id: String,
    /// `company`, `contact`, `company_product` or `activity`.
    pub(crate) kind: String,
    /// The local record id.
    pub(crate) record_id: u64,
    /// `pending` or `dead`.
    pub(crate) state: String,
    /// Failed sends so far.
    pub(crate) attempts: u32,
    /// Salesforce's message for the last failure.
    pub(crate) last_error: Option<String>,
    /// Not sent before this instant.
    pub(crate) next_attempt_at: Option<DateTime<Utc>>,
    /// When the entry was written.
    pub(crate) created_at: DateTime<Utc>,
}

impl From<OutboxEntry> for OutboxEntryView {
    fn from(e: OutboxEntry) -> Self {
        Self {
            id: e.id,
            org_id: e.org_id.to_string(),
            kind: enum_text(&e.target.kind),
            record_id: e.target.id,
            state: enum_text(&e.state),
            attempts: e.attempts,
            last_error: e.last_error,
            next_attempt_at: DateTime::from_timestamp_millis(e.next_attempt_ms),
            created_at: e.created_at,
        }
    }
}

/// The answer to a write: the record and the outbox entry that will push it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Written<T> {
    /// The record as stored.
    pub(crate) record: T,
    /// The outbox entry (absent when nothing needs pushing).
    pub(crate) outbox_id: Option<u64>,
}

// ---------------------------------------------------------------- requests

/// `POST /api/v1/companies`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCompany {
    /// The org (optional when one org is configured).
    #[serde(default)]
    pub(crate) org_id: Option<String>,
    /// Name (required).
    pub(crate) name: String,
    /// Bare domain.
    #[serde(default)]
    pub(crate) domain: Option<String>,
    /// Website.
    #[serde(default)]
    pub(crate) website: Option<String>,
    /// Industry.
    #[serde(default)]
    pub(crate) industry: Option<String>,
    /// Annual revenue (at least 0).
    #[serde(default)]
    pub(crate) annual_revenue: Option<f64>,
    /// Employees (at least 0).
    #[serde(default)]
    pub(crate) employees: Option<i64>,
}

/// `PATCH /api/v1/companies/{id}`: the fields to change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompanyChanges {
    /// The org (optional when one org is configured).
    #[serde(default)]
    pub(crate) org_id: Option<String>,
    /// Name.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Bare domain.
    #[serde(default)]
    pub(crate) domain: Option<String>,
    /// Website.
    #[serde(default)]
    pub(crate) website: Option<String>,
    /// Industry.
    #[serde(default)]
    pub(crate) industry: Option<String>,
    /// Annual revenue.
    #[serde(default)]
    pub(crate) annual_revenue: Option<f64>,
    /// Employees.
    #[serde(default)]
    pub(crate) employees: Option<i64>,
}

/// `POST /api/v1/contacts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewContact {
    /// The org (optional when one org is configured).
    #[serde(default)]
    pub(crate) org_id: Option<String>,
    /// Local company id.
    #[serde(default)]
    pub(crate) company_id: Option<u64>,
    /// Given name.
    #[serde(default)]
    pub(crate) first_name: Option<String>,
    /// Family name (required).
    pub(crate) last_name: String,
    /// Email.
    #[serde(default)]
    pub(crate) email: Option<String>,
    /// Title.
    #[serde(default)]
    pub(crate) title: Option<String>,
    /// Phone.
    #[serde(default)]
    pub(crate) phone: Option<String>,
    /// `contact` or `lead` (default from `[sync] push_as`).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "lead")]
    pub(crate) push_as: Option<PushAs>,
}

/// `PATCH /api/v1/contacts/{id}`: the fields to change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContactChanges {
    /// The org (optional when one org is configured).
    #[serde(default)]
    pub(crate) org_id: Option<String>,
    /// Local company id.
    #[serde(default)]
    pub(crate) company_id: Option<u64>,
    /// Given name.
    #[serde(default)]
    pub(crate) first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub(crate) last_name: Option<String>,
    /// Email.
    #[serde(default)]
    pub(crate) email: Option<String>,
    /// Title.
    #[serde(default)]
    pub(crate) title: Option<String>,
    /// Phone.
    #[serde(default)]
    pub(crate) phone: Option<String>,
    /// `contact` or `lead`, for a contact not yet in Salesforce.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "contact")]
    pub(crate) push_as: Option<PushAs>,
}

/// `POST /api/v1/company-products`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewProduct {
    /// The org (optional when one org is configured).
    #[serde(default)]
    pub(crate) org_id: Option<String>,
    /// Local company id (required).
    pub(crate) company_id: u64,
    /// Product name (required).
    pub(crate) product: String,
    /// PROSPECT, OPPORTUNITY, CUSTOMER or LOST.
    #[schema(value_type = String, example = "OPPORTUNITY")]
    pub(crate) status: OwnershipStatus,
    /// Deal size (at least 0).
    #[serde(default)]
    pub(crate) opportunity_size: Option<f64>,
    /// Internal funnel stage.
    #[serde(default)]
    pub(crate) stage: Option<String>,
    /// Expected close date (`YYYY-MM-DD`).
    #[serde(default)]
    pub(crate) close_date: Option<NaiveDate>,
}

/// `PATCH /api/v1/company-products/{id}`: the fields to change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProductChanges {
    /// The org (optional when one org is configured).
    #[serde(default)]
    pub(crate) org_id: Option<String>,
    /// PROSPECT, OPPORTUNITY, CUSTOMER or LOST.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "CUSTOMER")]
    pub(crate) status: Option<OwnershipStatus>,
    /// Deal size.
    #[serde(default)]
    pub(crate) opportunity_size: Option<f64>,
    /// Internal funnel stage.
    #[serde(default)]
    pub(crate) stage: Option<String>,
    /// Expected close date.
    #[serde(default)]
    pub(crate) close_date: Option<NaiveDate>,
}

/// `POST /api/v1/activities`: an email sent or a meeting booked.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewActivity {
    /// The org (optional when one org is configured).
    #[serde(default)]
    pub(crate) org_id: Option<String>,
    /// `email_sent` or `meeting_booked`.
    #[schema(value_type = String, example = "email_sent")]
    pub(crate) kind: ActivityKind,
    /// Local contact id.
    #[serde(default)]
    pub(crate) contact_id: Option<u64>,
    /// Local company id (default: the contact's).
    #[serde(default)]
    pub(crate) company_id: Option<u64>,
    /// Subject (required).
    pub(crate) subject: String,
    /// Body or description.
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// When it happened (default: now).
    #[serde(default)]
    pub(crate) occurred_at: Option<DateTime<Utc>>,
    /// Meeting start (meetings).
    #[serde(default)]
    pub(crate) starts_at: Option<DateTime<Utc>>,
    /// Meeting end (after the start).
    #[serde(default)]
    pub(crate) ends_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/outbox?state=`.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct OutboxQuery {
    /// The org (optional when one org is configured).
    pub(crate) org_id: Option<String>,
    /// `pending` or `dead` (default: both).
    pub(crate) state: Option<String>,
}

// ---------------------------------------------------------------- writes

fn non_empty(field: &str, v: &str) -> ApiResult<()> {
    if v.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    Ok(())
}

fn non_negative(field: &str, v: Option<f64>) -> ApiResult<()> {
    if v.is_some_and(|x| !x.is_finite() || x < 0.0) {
        return Err(invalid(field, "must be a number of at least 0"));
    }
    Ok(())
}

fn check_email(v: Option<&str>) -> ApiResult<()> {
    if let Some(e) = v {
        if normalize::email(e).is_none() {
            return Err(invalid("email", "is not an email address"));
        }
    }
    Ok(())
}

fn check_company(c: &Company) -> ApiResult<()> {
    non_empty("name", &c.name)?;
    non_negative("annual_revenue", c.annual_revenue)?;
    if c.employees.is_some_and(|n| n < 0) {
        return Err(invalid("employees", "must be at least 0"));
    }
    Ok(())
}

/// Why a write transaction refused: a field error, or a missing record.
type Refusal = PushApiError;

fn refuse<T>(e: PushApiError) -> Result<T, TxAbort<Refusal>> {
    Err(TxAbort::User(e))
}

fn provenance(event: &str, rule: &str, now: DateTime<Utc>) -> Provenance {
    Provenance {
        side: "local".into(),
        event: event.into(),
        rule: rule.into(),
        at: now.to_rfc3339(),
    }
}

/// Enqueues the record's push and records where the change came from.
fn enqueue(
    tx: &Tx<'_>,
    org: &OrgId,
    target: LocalRef,
    push_as: Option<PushAs>,
    rule: &str,
    now: DateTime<Utc>,
) -> Result<u64, TxAbort<Refusal>> {
    tx.add_provenance(org, target, &provenance("api", rule, now))?;
    Ok(tx.enqueue_push(org, target, push_as, now)?)
}

/// Commits `f` and waits until it is durable.
async fn write<R>(
    store: &Store,
    f: impl Fn(&Tx<'_>) -> Result<R, TxAbort<Refusal>>,
) -> ApiResult<R> {
    let r = store.transact(f)?;
    store.make_durable().await?;
    Ok(r)
}

fn company_ref(id: u64) -> LocalRef {
    LocalRef {
        kind: RecordKind::Company,
        id,
    }
}

fn new_company(org: &OrgId, req: &NewCompany, now: DateTime<Utc>) -> ApiResult<Company> {
    let c = Company {
        id: 0,
        org_id: org.clone(),
        name: req.name.trim().to_string(),
        domain: req
            .domain
            .as_deref()
            .or(req.website.as_deref())
            .and_then(normalize::domain),
        website: req.website.clone(),
        industry: req.industry.clone(),
        annual_revenue: req.annual_revenue,
        employees: req.employees,
        salesforce_id: None,
        updated_at: now,
    };
    check_company(&c)?;
    Ok(c)
}

#[utoipa::path(post, path = "/api/v1/companies", request_body = NewCompany,
    responses((status = 201, body = Written<CompanyView>), (status = 422, body = ErrorBody)))]
async fn create_company(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: NewCompany = parse_body(&body)?;
    let org = org_for(&state, req.org_id.as_deref())?;
    let company = new_company(&org, &req, Utc::now())?;
    let (c, outbox) = write(&state.store, |tx| {
        let c = Company {
            id: tx.next_id()?,
            ..company.clone()
        };
        tx.put_company(&c)?;
        let id = enqueue(
            tx,
            &org,
            company_ref(c.id),
            None,
            "api:create",
            c.updated_at,
        )?;
        Ok((c, id))
    })
    .await?;
    Ok(created(CompanyView::from(c), Some(outbox)))
}

fn created<T: Serialize>(record: T, outbox_id: Option<u64>) -> Response {
    (StatusCode::CREATED, Json(Written { record, outbox_id })).into_response()
}

#[utoipa::path(patch, path = "/api/v1/companies/{id}", request_body = CompanyChanges,
    params(("id" = u64, Path, description = "Local company id")),
    responses((status = 200, body = Written<CompanyView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_company(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    body: Bytes,
) -> ApiResult<Json<Written<CompanyView>>> {
    let req: CompanyChanges = parse_body(&body)?;
    let org = org_for(&state, req.org_id.as_deref())?;
    let now = Utc::now();
    let (c, outbox) = write(&state.store, |tx| {
        let Some(mut c) = tx.company(&org, id)? else {
            return refuse(PushApiError::NotFound("company"));
        };
        apply_company(&mut c, &req, now);
        check_company(&c).or_else(refuse)?;
        tx.put_company(&c)?;
        let id = enqueue(tx, &org, company_ref(c.id), None, "api:update", now)?;
        Ok((c, id))
    })
    .await?;
    Ok(Json(Written {
        record: c.into(),
        outbox_id: Some(outbox),
    }))
}

fn apply_company(c: &mut Company, req: &CompanyChanges, now: DateTime<Utc>) {
    if let Some(v) = &req.name {
        c.name = v.trim().to_string();
    }
    if let Some(v) = &req.website {
        c.website = Some(v.clone());
        c.domain = normalize::domain(v).or(c.domain.take());
    }
    if let Some(v) = &req.domain {
        c.domain = normalize::domain(v);
    }
    if let Some(v) = &req.industry {
        c.industry = Some(v.clone());
    }
    if req.annual_revenue.is_some() {
        c.annual_revenue = req.annual_revenue;
    }
    if req.employees.is_some() {
        c.employees = req.employees;
    }
    c.updated_at = now;
}

fn check_contact(c: &Contact) -> ApiResult<()> {
    non_empty("last_name", &c.last_name)?;
    check_email(c.email.as_deref())
}

/// Checks the contact's company exists and, for a contact pushed as a Contact, that an unlinked
/// company will be pushed as its Account first.
fn contact_company(
    tx: &Tx<'_>,
    org: &OrgId,
    c: &Contact,
    push_as: PushAs,
) -> Result<(), TxAbort<Refusal>> {
    let Some(company_id) = c.company_id else {
        return Ok(());
    };
    let Some(company) = tx.company(org, company_id)? else {
        return refuse(invalid("company_id", "no such company"));
    };
    let target = company_ref(company.id);
    if push_as == PushAs::Contact
        && c.salesforce_id.is_none()
        && company.salesforce_id.is_none()
        && tx.outbox_entry_for(org, target)?.is_none()
    {
        enqueue(
            tx,
            org,
            target,
            None,
            "api:account-for-contact",
            c.updated_at,
        )?;
    }
    Ok(())
}

fn contact_ref(id: u64) -> LocalRef {
    LocalRef {
        kind: RecordKind::Contact,
        id,
    }
}

fn new_contact(org: &OrgId, req: &NewContact, now: DateTime<Utc>) -> ApiResult<Contact> {
    let c = Contact {
        id: 0,
        org_id: org.clone(),
        company_id: req.company_id,
        first_name: req.first_name.clone(),
        last_name: req.last_name.trim().to_string(),
        email: req.email.as_deref().map(|e| e.trim().to_string()),
        title: req.title.clone(),
        phone: req.phone.clone(),
        salesforce_id: None,
        salesforce_kind: None,
        updated_at: now,
    };
    check_contact(&c)?;
    Ok(c)
}

/// Stores a new contact (its company pushed first when it must become its Account).
fn insert_contact(
    tx: &Tx<'_>,
    contact: &Contact,
    push_as: PushAs,
) -> Result<(Contact, u64), TxAbort<Refusal>> {
    let c = Contact {
        id: tx.next_id()?,
        ..contact.clone()
    };
    contact_company(tx, &c.org_id, &c, push_as)?;
    tx.put_contact(&c)?;
    let id = enqueue(
        tx,
        &c.org_id,
        contact_ref(c.id),
        Some(push_as),
        "api:create",
        c.updated_at,
    )?;
    Ok((c, id))
}

#[utoipa::path(post, path = "/api/v1/contacts", request_body = NewContact,
    responses((status = 201, body = Written<ContactView>), (status = 422, body = ErrorBody)))]
async fn create_contact(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: NewContact = parse_body(&body)?;
    let org = org_for(&state, req.org_id.as_deref())?;
    let push_as = req.push_as.unwrap_or(state.push_as);
    let contact = new_contact(&org, &req, Utc::now())?;
    let (c, outbox) = write(&state.store, |tx| insert_contact(tx, &contact, push_as)).await?;
    Ok(created(ContactView::from(c), Some(outbox)))
}

#[utoipa::path(patch, path = "/api/v1/contacts/{id}", request_body = ContactChanges,
    params(("id" = u64, Path, description = "Local contact id")),
    responses((status = 200, body = Written<ContactView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_contact(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    body: Bytes,
) -> ApiResult<Json<Written<ContactView>>> {
    let req: ContactChanges = parse_body(&body)?;
    let org = org_for(&state, req.org_id.as_deref())?;
    let now = Utc::now();
    let default_as = state.push_as;
    let (c, outbox) = write(&state.store, |tx| {
        let Some(mut c) = tx.contact(&org, id)? else {
            return refuse(PushApiError::NotFound("contact"));
        };
        apply_contact(&mut c, &req, now);
        check_contact(&c).or_else(refuse)?;
        contact_company(tx, &org, &c, req.push_as.unwrap_or(default_as))?;
        tx.put_contact(&c)?;
        let id = enqueue(tx, &org, contact_ref(c.id), req.push_as, "api:update", now)?;
        Ok((c, id))
    })
    .await?;
    Ok(Json(Written {
        record: c.into(),
        outbox_id: Some(outbox),
    }))
}

fn apply_contact(c: &mut Contact, req: &ContactChanges, now: DateTime<Utc>) {
    let set = |dst: &mut Option<String>, v: &Option<String>| {
        if let Some(v) = v {
            *dst = Some(v.trim().to_string());
        }
    };
    if req.company_id.is_some() {
        c.company_id = req.company_id;
    }
    set(&mut c.first_name, &req.first_name);
    if let Some(v) = &req.last_name {
        c.last_name = v.trim().to_string();
    }
    set(&mut c.email, &req.email);
    set(&mut c.title, &req.title);
    set(&mut c.phone, &req.phone);
    c.updated_at = now;
}

fn check_product(p: &CompanyProduct) -> ApiResult<()> {
    non_empty("product", &p.product)?;
    non_negative("opportunity_size", p.opportunity_size)
}

fn product_ref(id: u64) -> LocalRef {
    LocalRef {
        kind: RecordKind::CompanyProduct,
        id,
    }
}

fn new_product(org: &OrgId, req: &NewProduct, now: DateTime<Utc>) -> ApiResult<CompanyProduct> {
    let p = CompanyProduct {
        id: 0,
        org_id: org.clone(),
        company_id: req.company_id,
        product: req.product.trim().to_string(),
        status: req.status,
        opportunity_size: req.opportunity_size,
        stage: req.stage.clone(),
        close_date: req.close_date,
        salesforce_opportunity_id: None,
        updated_at: now,
    };
    check_product(&p)?;
    Ok(p)
}

/// Stores a new company product; an unlinked company is pushed first as its Account.
fn insert_product(
    tx: &Tx<'_>,
    product: &CompanyProduct,
) -> Result<(CompanyProduct, u64), TxAbort<Refusal>> {
    let org = &product.org_id;
    let Some(company) = tx.company(org, product.company_id)? else {
        return refuse(invalid("company_id", "no such company"));
    };
    let p = CompanyProduct {
        id: tx.next_id()?,
        ..product.clone()
    };
    tx.put_company_product(&p)?;
    let account = company_ref(company.id);
    if company.salesforce_id.is_none() && tx.outbox_entry_for(org, account)?.is_none() {
        enqueue(
            tx,
            org,
            account,
            None,
            "api:account-for-opportunity",
            p.updated_at,
        )?;
    }
    let id = enqueue(tx, org, product_ref(p.id), None, "api:create", p.updated_at)?;
    Ok((p, id))
}

#[utoipa::path(post, path = "/api/v1/company-products", request_body = NewProduct,
    responses((status = 201, body = Written<ProductView>), (status = 422, body = ErrorBody)))]
async fn create_product(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: NewProduct = parse_body(&body)?;
    let org = org_for(&state, req.org_id.as_deref())?;
    let product = new_product(&org, &req, Utc::now())?;
    let (p, outbox) = write(&state.store, |tx| insert_product(tx, &product)).await?;
    Ok(created(ProductView::from(p), Some(outbox)))
}

fn apply_product(p: &mut CompanyProduct, req: &ProductChanges, now: DateTime<Utc>) {
    if let Some(s) = req.status {
        p.status = s;
    }
    if req.opportunity_size.is_some() {
        p.opportunity_size = req.opportunity_size;
    }
    if req.stage.is_some() {
        p.stage = req.stage.clone();
    }
    if req.close_date.is_some() {
        p.close_date = req.close_date;
    }
    p.updated_at = now;
}

#[utoipa::path(patch, path = "/api/v1/company-products/{id}", request_body = ProductChanges,
    params(("id" = u64, Path, description = "Local company product id")),
    responses((status = 200, body = Written<ProductView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_product(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    body: Bytes,
) -> ApiResult<Json<Written<ProductView>>> {
    let req: ProductChanges = parse_body(&body)?;
    let org = org_for(&state, req.org_id.as_deref())?;
    let now = Utc::now();
    let (p, outbox) = write(&state.store, |tx| {
        let Some(mut p) = tx.company_product(&org, id)? else {
            return refuse(PushApiError::NotFound("company product"));
        };
        apply_product(&mut p, &req, now);
        check_product(&p).or_else(refuse)?;
        tx.put_company_product(&p)?;
        let id = enqueue(tx, &org, product_ref(p.id), None, "api:update", now)?;
        Ok((p, id))
    })
    .await?;
    Ok(Json(Written {
        record: p.into(),
        outbox_id: Some(outbox),
    }))
}

fn check_activity(req: &NewActivity) -> ApiResult<()> {
    non_empty("subject", &req.subject)?;
    if let (Some(s), Some(e)) = (req.starts_at, req.ends_at) {
        if e <= s {
            return Err(invalid("ends_at", "must be after starts_at"));
        }
    }
    Ok(())
}

/// Stores a new activity (its company defaults to its contact's).
fn insert_activity(
    tx: &Tx<'_>,
    org: &OrgId,
    req: &NewActivity,
    now: DateTime<Utc>,
) -> Result<(Activity, u64), TxAbort<Refusal>> {
    let contact = match req.contact_id {
        Some(id) => match tx.contact(org, id)? {
            Some(c) => Some(c),
            None => return refuse(invalid("contact_id", "no such contact")),
        },
        None => None,
    };
    if let Some(id) = req.company_id {
        if tx.company(org, id)?.is_none() {
            return refuse(invalid("company_id", "no such company"));
        }
    }
    let a = Activity {
        id: tx.next_id()?,
        org_id: org.clone(),
        kind: req.kind,
        contact_id: req.contact_id,
        company_id: req.company_id.or(contact.and_then(|c| c.company_id)),
        subject: req.subject.trim().to_string(),
        description: req.description.clone(),
        occurred_at: req.occurred_at.unwrap_or(now),
        starts_at: req.starts_at,
        ends_at: req.ends_at,
        salesforce_id: None,
    };
    tx.put_activity(&a)?;
    let target = LocalRef {
        kind: RecordKind::Activity,
        id: a.id,
    };
    let id = enqueue(tx, org, target, None, "api:create", now)?;
    Ok((a, id))
}

#[utoipa::path(post, path = "/api/v1/activities", request_body = NewActivity,
    responses((status = 201, body = Written<ActivityView>), (status = 422, body = ErrorBody)))]
async fn create_activity(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: NewActivity = parse_body(&body)?;
    let org = org_for(&state, req.org_id.as_deref())?;
    check_activity(&req)?;
    let now = Utc::now();
    let (a, outbox) = write(&state.store, |tx| insert_activity(tx, &org, &req, now)).await?;
    Ok(created(ActivityView::from(a), Some(outbox)))
}

// ---------------------------------------------------------------- "Sync to Salesforce"

/// Enqueues a record's push to go out now: past any back-off, and a dead letter gets another
/// chance.
fn enqueue_now(
    tx: &Tx<'_>,
    org: &OrgId,
    target: LocalRef,
    now: DateTime<Utc>,
) -> Result<u64, TxAbort<Refusal>> {
    let exists = match target.kind {
        RecordKind::Company => tx.company(org, target.id)?.is_some(),
        RecordKind::Contact => tx.contact(org, target.id)?.is_some(),
        RecordKind::CompanyProduct => tx.company_product(org, target.id)?.is_some(),
        RecordKind::Activity => tx.activity(org, target.id)?.is_some(),
    };
    if !exists {
        return refuse(PushApiError::NotFound("record"));
    }
    let id = enqueue(tx, org, target, None, "api:sync", now)?;
    if let Some(mut e) = tx.outbox_entry(org, id)? {
        e.state = OutboxState::Pending;
        e.attempts = 0;
        e.next_attempt_ms = now.timestamp_millis();
        tx.put_outbox_entry(&e)?;
    }
    Ok(id)
}

async fn sync_record(state: &AppState, org: Option<&str>, target: LocalRef) -> ApiResult<Response> {
    let org = org_for(state, org)?;
    let now = Utc::now();
    let outbox = write(&state.store, |tx| enqueue_now(tx, &org, target, now)).await?;
    let body = Json(serde_json::json!({ "outbox_id": outbox }));
    Ok((StatusCode::ACCEPTED, body).into_response())
}

/// `POST /api/v1/companies/{id}/sync`: push the company's current state now.
#[utoipa::path(post, path = "/api/v1/companies/{id}/sync", params(("id" = u64, Path), OrgQuery),
    responses((status = 202, description = "queued"), (status = 404, body = ErrorBody)))]
async fn sync_company(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<OrgQuery>,
) -> ApiResult<Response> {
    sync_record(&state, q.org_id.as_deref(), company_ref(id)).await
}

/// `POST /api/v1/contacts/{id}/sync`.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/sync", params(("id" = u64, Path), OrgQuery),
    responses((status = 202, description = "queued"), (status = 404, body = ErrorBody)))]
async fn sync_contact(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<OrgQuery>,
) -> ApiResult<Response> {
    sync_record(&state, q.org_id.as_deref(), contact_ref(id)).await
}

/// `POST /api/v1/company-products/{id}/sync`.
#[utoipa::path(post, path = "/api/v1/company-products/{id}/sync", params(("id" = u64, Path), OrgQuery),
    responses((status = 202, description = "queued"), (status = 404, body = ErrorBody)))]
async fn sync_product(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<OrgQuery>,
) -> ApiResult<Response> {
    sync_record(&state, q.org_id.as_deref(), product_ref(id)).await
}

/// `POST /api/v1/activities/{id}/sync`.
#[utoipa::path(post, path = "/api/v1/activities/{id}/sync", params(("id" = u64, Path), OrgQuery),
    responses((status = 202, description = "queued"), (status = 404, body = ErrorBody)))]
async fn sync_activity(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<OrgQuery>,
) -> ApiResult<Response> {
    let target = LocalRef {
        kind: RecordKind::Activity,
        id,
    };
    sync_record(&state, q.org_id.as_deref(), target).await
}

// ---------------------------------------------------------------- reads

/// One org's records of a kind, as their API views.
fn views<T, V: From<T>>(
    state: &AppState,
    org: Option<&str>,
    read: impl Fn(&crate::store::Store, &OrgId) -> Result<Vec<T>, crate::store::StoreError>,
) -> ApiResult<Json<Vec<V>>> {
    let org = org_for(state, org)?;
    Ok(Json(
        read(&state.store, &org)?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/companies", params(OrgQuery), responses((status = 200, body = Vec<CompanyView>)))]
async fn list_companies(
    State(state): State<AppState>,
    Query(q): Query<OrgQuery>,
) -> ApiResult<Json<Vec<CompanyView>>> {
    views(&state, q.org_id.as_deref(), crate::store::Store::companies)
}

#[utoipa::path(get, path = "/api/v1/contacts", params(OrgQuery), responses((status = 200, body = Vec<ContactView>)))]
async fn list_contacts(
    State(state): State<AppState>,
    Query(q): Query<OrgQuery>,
) -> ApiResult<Json<Vec<ContactView>>> {
    views(&state, q.org_id.as_deref(), crate::store::Store::contacts)
}

#[utoipa::path(get, path = "/api/v1/company-products", params(OrgQuery), responses((status = 200, body = Vec<ProductView>)))]
async fn list_products(
    State(state): State<AppState>,
    Query(q): Query<OrgQuery>,
) -> ApiResult<Json<Vec<ProductView>>> {
    views(
        &state,
        q.org_id.as_deref(),
        crate::store::Store::company_products,
    )
}

#[utoipa::path(get, path = "/api/v1/activities", params(OrgQuery), responses((status = 200, body = Vec<ActivityView>)))]
async fn list_activities(
    State(state): State<AppState>,
    Query(q): Query<OrgQuery>,
) -> ApiResult<Json<Vec<ActivityView>>> {
    views(&state, q.org_id.as_deref(), crate::store::Store::activities)
}

// ---------------------------------------------------------------- outbox

fn parse_state(s: Option<&str>) -> ApiResult<Option<OutboxState>> {
    match s {
        None | Some("") => Ok(None),
        Some("pending") => Ok(Some(OutboxState::Pending)),
        Some("dead") => Ok(Some(OutboxState::Dead)),
        Some(_) => Err(invalid("state", "must be pending or dead")),
    }
}

#[utoipa::path(get, path = "/api/v1/outbox", params(OutboxQuery),
    responses((status = 200, body = Vec<OutboxEntryView>), (status = 422, body = ErrorBody)))]
async fn list_outbox(
    State(state): State<AppState>,
    Query(q): Query<OutboxQuery>,
) -> ApiResult<Json<Vec<OutboxEntryView>>> {
    let org = org_for(&state, q.org_id.as_deref())?;
    let wanted = parse_state(q.state.as_deref())?;
    let entries = state.store.outbox_entries(&org, wanted)?;
    Ok(Json(entries.into_iter().map(Into::into).collect()))
}

/// Retries a dead letter now (attempts reset) or discards it.
fn resolve(
    tx: &Tx<'_>,
    org: &OrgId,
    id: u64,
    retry: bool,
    now: DateTime<Utc>,
) -> Result<OutboxEntryView, TxAbort<Refusal>> {
    let Some(mut e) = tx.outbox_entry(org, id)? else {
        return refuse(PushApiError::NotFound("outbox entry"));
    };
    if e.state != OutboxState::Dead {
        return refuse(PushApiError::Conflict(
            "only dead entries can be retried or discarded",
        ));
    }
    let rule = if retry {
        "api:retry-dead-letter"
    } else {
        "api:discard-dead-letter"
    };
    tx.add_provenance(
        org,
        e.target,
        &provenance(&format!("outbox:{id}"), rule, now),
    )?;
    if retry {
        e.state = OutboxState::Pending;
        e.attempts = 0;
        e.next_attempt_ms = now.timestamp_millis();
        e.updated_at = now;
        tx.put_outbox_entry(&e)?;
    } else {
        tx.remove_outbox_entry(&e)?;
    }
    Ok(e.into())
}

async fn resolve_dead(
    state: &AppState,
    org: Option<&str>,
    id: u64,
    retry: bool,
) -> ApiResult<OutboxEntryView> {
    let org = org_for(state, org)?;
    let now = Utc::now();
    write(&state.store, |tx| resolve(tx, &org, id, retry, now)).await
}

#[utoipa::path(post, path = "/api/v1/outbox/{id}/retry", params(("id" = u64, Path), OrgQuery),
    responses((status = 200, body = OutboxEntryView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retry_entry(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<OrgQuery>,
) -> ApiResult<Json<OutboxEntryView>> {
    Ok(Json(
        resolve_dead(&state, q.org_id.as_deref(), id, true).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/outbox/{id}/discard", params(("id" = u64, Path), OrgQuery),
    responses((status = 200, body = OutboxEntryView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn discard_entry(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<OrgQuery>,
) -> ApiResult<Json<OutboxEntryView>> {
    Ok(Json(
        resolve_dead(&state, q.org_id.as_deref(), id, false).await?,
    ))
}

// ---------------------------------------------------------------- OpenAPI

/// The push side's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sfsync local API",
        description = "Local records, their outbox to Salesforce, and dead letters. Bearer token required."
    ),
    paths(
        create_company,
        update_company,
        list_companies,
        sync_company,
        create_contact,
        update_contact,
        list_contacts,
        sync_contact,
        create_product,
        update_product,
        list_products,
        sync_product,
        create_activity,
        list_activities,
        sync_activity,
        list_outbox,
        retry_entry,
        discard_entry,
        openapi,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        CompanyView,
        ContactView,
        ProductView,
        ActivityView,
        OutboxEntryView,
        NewCompany,
        CompanyChanges,
        NewContact,
        ContactChanges,
        NewProduct,
        ProductChanges,
        NewActivity,
    ))
)]
pub(crate) struct PushApiDoc;

/// `GET /api/v1/openapi.json`: this API, generated from the code.
#[utoipa::path(get, path = "/api/v1/openapi.json", responses((status = 200, description = "the OpenAPI document")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::document())
}

/// Pending entries and dead letters over every configured org, for `GET /api/v1/status`.
pub(super) fn outbox_totals(state: &AppState) -> crate::store::OutboxCounts {
    let mut total = crate::store::OutboxCounts::default();
    for c in state.connections.all() {
        match state.store.outbox_counts(&c.org_id) {
            Ok(n) => {
                total.pending += n.pending;
                total.dead += n.dead;
            }
            Err(e) => tracing::error!(org = %c.org_id, error = %e, "counting the outbox failed"),
        }
    }
    total
}
