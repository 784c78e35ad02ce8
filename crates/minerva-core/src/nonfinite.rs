//! Serde for `f32` fields that may hold an infinity or NaN (a banned token's `-inf` logit bias, a
//! `-inf` log-probability). JSON has no such numbers and `serde_json` would write `null`, which
//! then fails to read back; these write a finite value as a number and any other as the string
//! `"inf"`, `"-inf"` or `"NaN"`, and read both forms.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An `f32` that serializes losslessly, infinities and NaN included.
#[derive(Debug, Clone, Copy)]
struct Float(f32);

impl Serialize for Float {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.serialize_f32(v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = Float;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, \"inf\", \"-inf\" or \"NaN\"")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Float, E> {
        Ok(Float(v as f32))
    }

    fn visit_f32<E: de::Error>(self, v: f32) -> Result<Float, E> {
        Ok(Float(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Float, E> {
        Ok(Float(v as f32))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Float, E> {
        Ok(Float(v as f32))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Float, E> {
        match v {
            "inf" => Ok(Float(f32::INFINITY)),
            "-inf" => Ok(Float(f32::NEG_INFINITY)),
            "NaN" => Ok(Float(f32::NAN)),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Float, D::Error> {
        d.deserialize_any(FloatVisitor)
    }
}

/// `#[serde(with = "crate::nonfinite::single")]` on an `f32`.
pub(crate) mod single {
    use super::*;

    pub fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        Float(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        Float::deserialize(d).map(|f| f.0)
    }
}

/// `#[serde(with = "crate::nonfinite::optional")]` on an `Option<f32>`.
pub(crate) mod optional {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
        v.map(Float).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
        Option::<Float>::deserialize(d).map(|o| o.map(|f| f.0))
    }
}

/// `#[serde(with = "crate::nonfinite::bias")]` on a `Vec<(TokenId, f32)>`.
pub(crate) mod bias {
    use super::*;
    use crate::TokenId;

    pub fn serialize<S: Serializer>(v: &[(TokenId, f32)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|&(t, b)| (t, Float(b))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(TokenId, f32)>, D::Error> {
        let pairs = Vec::<(TokenId, Float)>::deserialize(d)?;
        Ok(pairs.into_iter().map(|(t, f)| (t, f.0)).collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::{GenEvent, SamplingParams, TokenLogprob, TokenOut};

    #[test]
    fn logit_bias_with_infinities_round_trips_through_json() {
        let params = SamplingParams {
            logit_bias: vec![(1, f32::NEG_INFINITY), (2, 2.5), (3, f32::INFINITY)],
            ..SamplingParams::default()
        };
        let json = serde_json::to_string(&params).unwrap();
        assert!(json.contains("\"-inf\""), "{json}");
        let back: SamplingParams = serde_json::from_str(&json).unwrap();
        assert_eq!(back, params);
    }

    #[test]
    fn logprobs_with_infinities_and_nan_round_trip_through_json() {
        let event = GenEvent::Token(TokenOut {
            id: 7,
            bytes: b"hi".to_vec(),
            logprob: Some(f32::NEG_INFINITY),
            top_logprobs: vec![
                TokenLogprob {
                    id: 7,
                    bytes: b"hi".to_vec(),
                    logprob: -0.25,
                },
                TokenLogprob {
                    id: 8,
                    bytes: vec![],
                    logprob: f32::NAN,
                },
            ],
        });
        let json = serde_json::to_string(&event).unwrap();
        let back: GenEvent = serde_json::from_str(&json).unwrap();
        let GenEvent::Token(t) = back else {
            panic!("not a token: {back:?}")
        };
        assert_eq!(t.logprob, Some(f32::NEG_INFINITY));
        assert_eq!(t.top_logprobs[0].logprob, -0.25);
        assert!(t.top_logprobs[1].logprob.is_nan());
        let none: TokenOut = serde_json::from_str(
            &serde_json::to_string(&TokenOut {
                id: 1,
                bytes: vec![],
                logprob: None,
                top_logprobs: vec![],
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(none.logprob, None);
    }

    #[test]
    fn an_unknown_string_is_refused() {
        assert!(serde_json::from_str::<SamplingParams>(
            r#"{"temperature":0.0,"top_p":1.0,"top_k":0,"min_p":0.0,"repeat_penalty":1.0,
                "repeat_last_n":64,"presence_penalty":0.0,"frequency_penalty":0.0,"seed":null,
                "logit_bias":[[1,"minus infinity"]],"ignore_eos":false}"#
        )
        .is_err());
    }
}
