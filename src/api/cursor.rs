//! Opaque page cursors: the position's parts, base64url-encoded. Clients pass `next_cursor`
//! back as `cursor` untouched; the encoding is not a contract.

use base64::Engine;

use super::ApiError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A cursor for a position made of `parts`.
pub fn encode(parts: &[&str]) -> String {
    B64.encode(parts.join("\n"))
}

/// The `parts` parts of a cursor; 400 for anything else.
pub fn decode(c: &str, parts: usize) -> Result<Vec<String>, ApiError> {
    let text = B64
        .decode(c)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let v: Vec<String> = text.split('\n').map(str::to_string).collect();
    if v.len() == parts {
        Ok(v)
    } else {
        Err(invalid())
    }
}

/// A cursor holding one numeric id.
pub fn decode_id(c: &str) -> Result<i64, ApiError> {
    decode(c, 1)?[0].parse().map_err(|_| invalid())
}

fn invalid() -> ApiError {
    ApiError::BadRequest("invalid cursor; pass next_cursor back unchanged".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode(&["ada@x", "0193"]);
        assert_eq!(decode(&c, 2).ok(), Some(vec!["ada@x".to_string(), "0193".to_string()]));
        assert!(decode(&c, 1).is_err());
        assert!(decode("!!!", 1).is_err());
        assert_eq!(decode_id(&encode(&["42"])).ok(), Some(42));
        assert!(decode_id(&encode(&["x"])).is_err());
    }
}
