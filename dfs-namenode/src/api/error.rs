//! The one mapping from failures to HTTP: every error answer is an [`ApiError`] JSON body with
//! the status its code names. Request extractors ([`ApiJson`], [`ApiQuery`]) turn axum's
//! rejections (malformed JSON, a bad query string, an oversized body) into `EINVAL` or `E2BIG`
//! instead of axum's plain-text defaults.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dfs_proto::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;

/// An [`ApiError`] on its way out as an HTTP answer.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> HttpError {
        HttpError(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0)).into_response()
    }
}

/// The answer to a body that could not be taken. An oversized body was left unread, so its
/// connection cannot carry another request: the answer says `Connection: close`, or the client
/// would reuse a connection the server is about to drop and see its next request fail.
fn json_rejection(r: JsonRejection) -> Response {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let error = ApiError::new(ErrorCode::TooBig, "request body is larger than allowed");
        let mut response = HttpError(error).into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    } else {
        let error = ApiError::new(
            ErrorCode::Invalid,
            format!("malformed request body: {}", r.body_text()),
        );
        HttpError(error).into_response()
    }
}

/// A JSON request body; a rejection answers `EINVAL` (or `E2BIG` when too large).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

/// A query-string request; a rejection answers `EINVAL`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(HttpError(query_rejection(r))),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::new(
        ErrorCode::Invalid,
        format!("malformed query string: {}", r.body_text()),
    )
}

/// Unknown routes.
pub async fn not_found() -> HttpError {
    HttpError(ApiError::new(ErrorCode::NotFound, "no such endpoint"))
}

/// A known route called with the wrong method.
pub async fn method_not_allowed() -> HttpError {
    HttpError(ApiError::new(
        ErrorCode::Invalid,
        "method not allowed for this endpoint",
    ))
}
