//! `GET /files/shared/{token}`: a signed link's download, without signing in (filesystem
//! backend; S3 links are presigned and go to the store). An altered, expired or foreign token
//! is a 404 like any missing file: a link that does not work says nothing about the file.

use chrono::Utc;
use poem::{
    IntoResponse, Request, Response, handler,
    http::StatusCode,
    web::{Data, Path},
};

use crate::{AppState, api::files::download};

#[handler]
pub(crate) async fn shared_file(
    state: Data<&AppState>,
    request: &Request,
    Path(token): Path<String>,
) -> Response {
    let not_found = || StatusCode::NOT_FOUND.into_response();
    let Ok((tenant, id)) = state.storage.verify_link_token(&token, Utc::now()) else {
        return not_found();
    };
    let file = async {
        let mut tx = state.db.tenant(tenant).await.ok()?;
        let file = state.storage.find(&mut tx, id).await.ok()?;
        tx.commit().await.ok()?;
        Some(file)
    }
    .await;
    let Some(file) = file else {
        return not_found();
    };
    let range = request.headers().get("range").and_then(|v| v.to_str().ok());
    match download(&state, tenant, file, range).await {
        Ok(download) => download.into_response(),
        Err(error) => error.into_response(),
    }
}
