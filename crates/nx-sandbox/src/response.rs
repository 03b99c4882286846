//! Building answers: a handler's [`Outcome`], whole bodies with their `Content-Type` and
//! `Content-Length`, JSON, plain text and nginx-style HTML error pages.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};

/// A handler's answer plus what the log should say about it.
pub(crate) struct Outcome {
    pub(crate) response: Response<Body>,
    pub(crate) code: Option<i64>,
    pub(crate) note: Option<String>,
}

impl Outcome {
    pub(crate) fn new(response: Response<Body>) -> Self {
        Self {
            response,
            code: None,
            note: None,
        }
    }

    pub(crate) fn code(mut self, code: i64) -> Self {
        self.code = Some(code);
        self
    }

    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Adds `Connection: close` (the request body was not read to its end).
    pub(crate) fn close(mut self) -> Self {
        self.response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        self
    }
}

/// A response with a whole body, its `Content-Type` and `Content-Length`.
pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    bytes: Bytes,
) -> Response<Body> {
    let len = bytes.len();
    let mut response = Response::new(body::full(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    respond(status, "application/json", Bytes::from(bytes))
}

pub(crate) fn text(status: StatusCode, text: &str) -> Response<Body> {
    respond(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(text.to_owned()),
    )
}

/// An nginx-style HTML error page.
pub(crate) fn html_error(status: StatusCode) -> Response<Body> {
    let line = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let page = format!(
        "<html>\r\n<head><title>{line}</title></head>\r\n<body>\r\n<center><h1>{line}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    respond(status, "text/html", Bytes::from(page))
}

/// 413 for a body over a limit; the connection is closed since the body is not read.
pub(crate) fn too_large(limit: u64) -> Outcome {
    Outcome::new(html_error(StatusCode::PAYLOAD_TOO_LARGE))
        .note(format!("request body over {limit} bytes"))
        .close()
}
