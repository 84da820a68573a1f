//! The simulator's routes: the versions list, OAuth and the login page, the data API behind the
//! guard (`/services/data/vNN.0/…`), and the control surface (`/__sim/…`).

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

use super::guard::guard;
use super::state::Shared;
use super::{collections, composite, control, control_setup, meta, oauth, query, records};

/// The data API under `/services/data/{version}`, every route behind the guard.
fn data(shared: &Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(meta::resources))
        .route("/limits", get(meta::limits))
        .route("/limits/", get(meta::limits))
        .route("/sobjects", get(meta::describe_global))
        .route("/sobjects/", get(meta::describe_global))
        .route("/query", get(query::query))
        .route("/queryAll", get(query::query_all))
        .route("/query/{locator}", get(query::query_more))
        .route("/queryAll/{locator}", get(query::query_more))
        .route(
            "/sobjects/{object}",
            get(meta::basic_info).post(records::create),
        )
        .route("/sobjects/{object}/describe", get(meta::describe_object))
        .route("/sobjects/{object}/describe/", get(meta::describe_object))
        .route("/sobjects/{object}/listviews", get(meta::list_views))
        .route("/sobjects/{object}/listviews/{id}", get(meta::list_view))
        .route(
            "/sobjects/{object}/listviews/{id}/describe",
            get(meta::list_view_describe),
        )
        .route(
            "/sobjects/{object}/listviews/{id}/results",
            get(meta::list_view_results),
        )
        .route("/sobjects/{object}/updated", get(records::updated))
        .route("/sobjects/{object}/updated/", get(records::updated))
        .route("/sobjects/{object}/deleted", get(records::deleted))
        .route("/sobjects/{object}/deleted/", get(records::deleted))
        .route(
            "/sobjects/{object}/{id}",
            get(records::read)
                .patch(records::update)
                .delete(records::delete)
                .post(records::create_by_null_id),
        )
        .route(
            "/sobjects/{object}/{field}/{value}",
            get(records::read_by_external_id).patch(records::upsert),
        )
        .route("/composite", post(composite::composite))
        .route(
            "/composite/sobjects",
            post(collections::write)
                .patch(collections::write)
                .delete(collections::delete),
        )
        .route(
            "/composite/sobjects/{object}",
            get(collections::retrieve_get).post(collections::retrieve_post),
        )
        .route(
            "/composite/sobjects/{object}/{field}",
            axum::routing::patch(collections::upsert),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), guard))
}

/// The data API alone, for the subrequests of a composite call.
pub(crate) fn data_api(shared: Arc<Shared>) -> Router {
    Router::new()
        .nest("/services/data/{version}", data(&shared))
        .with_state(shared)
}

/// The router of the whole simulator.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let resources =
        get(meta::resources).route_layer(middleware::from_fn_with_state(shared.clone(), guard));
    Router::new()
        .route("/services/data", get(meta::versions))
        .route("/services/data/", get(meta::versions))
        .route("/services/data/{version}/", resources)
        .route(
            "/services/oauth2/authorize",
            get(oauth::authorize).post(oauth::sign_in),
        )
        .route("/services/oauth2/token", post(oauth::token))
        .route(
            "/services/oauth2/revoke",
            post(oauth::revoke).get(oauth::revoke_get),
        )
        .route("/services/oauth2/userinfo", get(oauth::userinfo))
        .nest("/services/data/{version}", data(&shared))
        .nest("/__sim", control::router().merge(control_setup::router()))
        .with_state(shared)
}
