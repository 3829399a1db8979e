//! Times on the wire are RFC 3339 (UTC or with an offset); the pages show them in the
//! browser's time zone and count ages in seconds.
//!
//! The parser is ours rather than `Date.parse`: chrono writes up to nine digits of
//! fractional seconds, which is outside the ECMAScript date format and so left to
//! each browser's leniency.

use crate::model::Lang;
use crate::prefs::lang_code;

/// Days from 1970-01-01 to the civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `2024-05-01T09:30:00Z`, `2024-05-01T09:30:00.123456789+09:00` -> milliseconds
/// since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.len() < 20 || !s.is_char_boundary(10) || !s.is_char_boundary(19) {
        return None;
    }
    let (date, rest) = s.split_at(10);
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, mut tail) = rest.split_at(8);
    let mut d = date.split('-');
    let (y, mo, da) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let mut c = clock.split(':');
    let (h, mi, se) = (num(c.next()?)?, num(c.next()?)?, num(c.next()?)?);
    if d.next().is_some() || c.next().is_some() || !(1..=12).contains(&mo) || da == 0 || da > 31 {
        return None;
    }
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut frac_ms = 0.0;
    if let Some(f) = tail.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        frac_ms = format!("0.{}", &f[..digits]).parse::<f64>().ok()? * 1000.0;
        tail = &f[digits..];
    }
    let offset_min: i64 = match tail {
        "Z" | "z" => 0,
        _ => {
            let sign = match tail.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = tail[1..].split_once(':')?;
            let (oh, om) = (num(oh)?, num(om)?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * i64::from(oh * 60 + om)
        }
    };
    let days = days_from_civil(i64::from(y), mo, da);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + se) - offset_min * 60;
    Some(secs as f64 * 1000.0 + frac_ms)
}

/// `ms` as the browser's local date and time, in the page's language.
pub fn local(lang: Lang, ms: f64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms));
    let opts = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&opts, &"dateStyle".into(), &"medium".into());
    let _ = js_sys::Reflect::set(&opts, &"timeStyle".into(), &"short".into());
    date.to_locale_string(lang_code(lang), &opts).into()
}

/// `ms` as the browser's local time of day (`14:05`, `오후 2:05`), for today's events.
pub fn local_clock(lang: Lang, ms: f64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms));
    let opts = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&opts, &"timeStyle".into(), &"short".into());
    date.to_locale_time_string_with_options(lang_code(lang), &opts)
        .into()
}

/// An RFC 3339 time as the local time of day (the text itself if it does not parse).
pub fn clock_rfc3339(lang: Lang, s: &str) -> String {
    parse_rfc3339(s)
        .map(|ms| local_clock(lang, ms))
        .unwrap_or_else(|| s.to_string())
}

/// Now as UTC RFC 3339 to the second (`2024-05-01T09:30:00Z`), for the server.
pub fn now_rfc3339() -> String {
    let t = js_sys::Date::new_0();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.get_utc_full_year(),
        t.get_utc_month() + 1,
        t.get_utc_date(),
        t.get_utc_hours(),
        t.get_utc_minutes(),
        t.get_utc_seconds()
    )
}

/// An RFC 3339 time as local date and time (the text itself if it does not parse).
pub fn local_rfc3339(lang: Lang, s: &str) -> String {
    parse_rfc3339(s)
        .map(|ms| local(lang, ms))
        .unwrap_or_else(|| s.to_string())
}

/// A `datetime-local` input's value (`YYYY-MM-DDTHH:MM`, maybe with `:SS`), a time of
/// the browser's zone, as UTC RFC 3339 (`2024-05-01T00:30:00Z`). None when empty or
/// not such a value.
pub fn local_input_to_utc(value: &str) -> Option<String> {
    let (date, clock) = value.trim().split_once('T')?;
    let mut d = date.split('-');
    let (y, mo, da) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let mut c = clock.split(':');
    let (h, mi) = (num(c.next()?)?, num(c.next()?)?);
    // The local time's seconds: the wire format has minutes; keep them only if given.
    let se = c
        .next()
        .map(|s| num(s.split('.').next().unwrap_or(s)))
        .unwrap_or(Some(0))?;
    // Date's multi-argument constructor reads them as local time (months from 0).
    let t = js_sys::Date::new_with_year_month_day_hr_min_sec(
        y,
        mo as i32 - 1,
        da as i32,
        h as i32,
        mi as i32,
        se as i32,
    );
    if t.get_time().is_nan() {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.get_utc_full_year(),
        t.get_utc_month() + 1,
        t.get_utc_date(),
        t.get_utc_hours(),
        t.get_utc_minutes(),
        t.get_utc_seconds()
    ))
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            parse_rfc3339("2024-05-01T09:30:00Z"),
            Some(1_714_555_800_000.0)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T18:30:00+09:00"),
            Some(1_714_555_800_000.0)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T09:30:00.250Z"),
            Some(1_714_555_800_250.0)
        );
        let nanos = parse_rfc3339("2024-05-01T09:30:00.123456789+00:00").unwrap();
        assert!((nanos - 1_714_555_800_123.457).abs() < 0.01);
        assert_eq!(
            parse_rfc3339("2000-02-29T23:59:59-00:30"),
            Some(951_870_599_000.0)
        );
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T09:30:00",
            "2024-13-01T09:30:00Z",
            "2024-05-01T09:30:00.Z",
            "2024-05-01T09:30:00+0900",
            "2024-05-01X09:30:00Z",
            "한국어한국어한국어한국어",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
