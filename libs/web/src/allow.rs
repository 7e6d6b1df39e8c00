//! `Allow` on 405 answers (RFC 9110 requires it), with the methods read from the OpenAPI
//! document itself, so the header can never disagree with the spec.

use std::sync::Arc;

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    http::{HeaderValue, StatusCode, header},
};

/// One API path template (`/tenants/{id}`) and the methods it answers.
struct PathMethods {
    segments: Vec<Option<String>>, // None: a `{parameter}` segment
    allow: HeaderValue,
}

pub(crate) struct AllowedMethods {
    paths: Vec<PathMethods>,
}

impl AllowedMethods {
    /// Reads `paths` from the OpenAPI JSON; `prefix` is where the API is mounted (`/api/v1`).
    pub(crate) fn from_spec(spec: &str, prefix: &str) -> Self {
        let document: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let paths = document["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(template, operations)| {
                let mut methods: Vec<String> = operations
                    .as_object()?
                    .keys()
                    .map(|m| m.to_uppercase())
                    .collect();
                methods.sort();
                let segments = format!("{prefix}{template}")
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                Some(PathMethods {
                    segments,
                    allow: HeaderValue::from_str(&methods.join(", ")).ok()?,
                })
            })
            .collect();
        Self { paths }
    }

    fn allow_for(&self, path: &str) -> Option<&HeaderValue> {
        let segments: Vec<&str> = path.split('/').collect();
        self.paths.iter().find_map(|p| {
            let matches = p.segments.len() == segments.len()
                && p.segments
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.as_deref().is_none_or(|t| t == *s));
            matches.then_some(&p.allow)
        })
    }
}

pub(crate) struct AnnounceAllowedMethods(pub(crate) Arc<AllowedMethods>);

impl<E: Endpoint> Middleware<E> for AnnounceAllowedMethods {
    type Output = AnnounceAllowedMethodsEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        AnnounceAllowedMethodsEndpoint {
            inner: ep,
            methods: self.0.clone(),
        }
    }
}

pub(crate) struct AnnounceAllowedMethodsEndpoint<E> {
    inner: E,
    methods: Arc<AllowedMethods>,
}

impl<E: Endpoint> Endpoint for AnnounceAllowedMethodsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let path = req.uri().path().to_owned();
        let mut response = match self.inner.call(req).await {
            Ok(output) => output.into_response(),
            Err(error) if error.status() == StatusCode::METHOD_NOT_ALLOWED => {
                crate::problem::render_poem_error(&path, error)
            }
            Err(error) => return Err(error),
        };
        if response.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(allow) = self.methods.allow_for(&path)
        {
            response.headers_mut().insert(header::ALLOW, allow.clone());
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_found_by_path_template() {
        let spec =
            r#"{"paths": {"/signups": {"post": {}}, "/tenants/{id}": {"get": {}, "delete": {}}}}"#;
        let methods = AllowedMethods::from_spec(spec, "/api/v1");
        assert_eq!(methods.allow_for("/api/v1/signups").unwrap(), "POST");
        assert_eq!(
            methods.allow_for("/api/v1/tenants/42").unwrap(),
            "DELETE, GET"
        );
        assert!(methods.allow_for("/api/v1/tenants").is_none());
        assert!(methods.allow_for("/elsewhere").is_none());
    }
}
