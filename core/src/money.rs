//! Money is kept as whole nano-dollars (1e-9 USD) so that sums over a
//! million calls are exact; it becomes a JSON number in dollars only at
//! the edge.

/// Nano-dollars per US dollar.
pub const NANOS_PER_DOLLAR: i64 = 1_000_000_000;

/// Dollars as the JSON number clients read.
pub fn nanos_to_dollars(nanos: i64) -> f64 {
    nanos as f64 / NANOS_PER_DOLLAR as f64
}

/// The nearest whole nano-dollar amount.
pub fn dollars_to_nanos(dollars: f64) -> i64 {
    (dollars * NANOS_PER_DOLLAR as f64).round() as i64
}

/// Serialises a nano-dollar field as dollars.
pub mod as_dollars {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes nano-dollars as dollars (a float).
    pub fn serialize<S: Serializer>(nanos: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(super::nanos_to_dollars(*nanos))
    }

    /// Reads dollars (a float) as whole nano-dollars, rounded.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        Ok(super::dollars_to_nanos(f64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_small_amounts_exactly() {
        for nanos in [0, 1, 150, 123_456_789, 42 * NANOS_PER_DOLLAR + 7] {
            assert_eq!(dollars_to_nanos(nanos_to_dollars(nanos)), nanos);
        }
    }

    #[test]
    fn sums_are_exact_where_floats_drift() {
        let per_call = dollars_to_nanos(0.000_1);
        let total: i64 = (0..1_000_000).map(|_| per_call).sum();
        assert_eq!(nanos_to_dollars(total), 100.0);
    }
}
