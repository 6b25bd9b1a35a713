//! Example Quiver functions over key-value buckets (`wasi:keyvalue`),
//! files of a directory the server grants (`--wasm-files NAME=DIR`) and the
//! server's log.
//!
//! ```sql
//! CREATE BUCKET rates;
//! COPY BUCKET rates FROM STDIN (FORMAT csv);   -- EUR,1.08 ...
//! CREATE FUNCTION to_usd(double precision, text) RETURNS double precision
//!   LANGUAGE wasm SET quiver.wasm.keyvalue = 'rates:read'
//!   AS 'quiver_example_keyvalue.wasm', 'to_usd';
//! SELECT amount, currency, to_usd(amount, currency) FROM payments;
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;

use quiver_udf::keyvalue::{self, Bucket, describe};

/// Lookup tables read from granted directories, loaded once per instance
/// (an instance serves many calls): file path → key → rest of the line.
static TABLES: Mutex<BTreeMap<String, BTreeMap<String, String>>> = Mutex::new(BTreeMap::new());

/// The rest of the line of CSV file `path` whose first field is `key`.
fn look_up(path: &str, key: &str) -> Result<Option<String>, String> {
    let mut tables = TABLES.lock().map_err(|_| "lookup tables poisoned".to_string())?;
    if !tables.contains_key(path) {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let table = text
            .lines()
            .filter_map(|line| line.split_once(','))
            .map(|(key, rest)| (key.to_string(), rest.to_string()))
            .collect();
        tables.insert(path.to_string(), table);
    }
    Ok(tables.get(path).and_then(|table| table.get(key)).cloned())
}

/// Opens `name`, or says why not.
fn open(name: &str) -> Result<Bucket, String> {
    keyvalue::open(name).map_err(|e| format!("cannot open bucket {name}: {}", describe(&e)))
}

quiver_udf::functions! {
    /// `amount` in US dollars, at the rate bucket `rates` holds for
    /// `currency` (decimal text: `EUR` → `1.08`).
    fn to_usd(amount: f64, currency: &str) -> Result<f64, String> {
        let rate = open("rates")?
            .get(currency)
            .map_err(|e| describe(&e))?
            .ok_or_else(|| format!("no rate for currency {currency}"))?;
        let rate: f64 = std::str::from_utf8(&rate)
            .ok()
            .and_then(|r| r.trim().parse().ok())
            .ok_or_else(|| format!("the rate of {currency} is not a number"))?;
        Ok(amount * rate)
    }

    /// Counts a hit of `key` in bucket `hits`: the count so far, this one
    /// included (needs `hits:read-write`).
    fn hit(key: &str) -> Result<i64, String> {
        let hits = open("hits")?;
        let count = keyvalue::increment(&hits, key, 1).map_err(|e| describe(&e))?;
        i64::try_from(count).map_err(|_| format!("the count of {key} is too large"))
    }

    /// The value of `key` in any bucket the definition grants, as text
    /// (null when absent): for trying what a grant allows.
    fn peek(bucket: &str, key: &str) -> Result<Option<String>, String> {
        let value = open(bucket)?.get(key).map_err(|e| describe(&e))?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Sets `key` to `value` in `bucket`: true when it is set.
    fn put(bucket: &str, key: &str, value: &str) -> Result<bool, String> {
        open(bucket)?
            .set(key, value.as_bytes())
            .map_err(|e| format!("cannot write to bucket {bucket}: {}", describe(&e)))?;
        Ok(true)
    }

    /// The rest of the line whose first field is `key` in CSV file `path`
    /// (a granted directory is `/NAME`: `/lookup/cities.csv`), the file
    /// read once per instance; null when no line has the key.
    fn lookup(path: &str, key: &str) -> Result<Option<String>, String> {
        look_up(path, key)
    }

    /// Writes `message` to stdout and a note to stderr, and returns it:
    /// the lines reach the server's log when the definition grants it
    /// (`SET quiver.wasm.log = on`), and only error messages otherwise.
    fn say(message: &str) -> String {
        println!("{message}");
        eprintln!("said {} bytes", message.len());
        message.to_string()
    }

    /// How many keys `bucket` holds, listing them page by page.
    fn key_count(bucket: &str) -> Result<i64, String> {
        let bucket = open(bucket)?;
        let (mut count, mut cursor) = (0i64, None);
        loop {
            let page = bucket.list_keys(cursor).map_err(|e| describe(&e))?;
            count += page.keys.len() as i64;
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(count),
            }
        }
    }
}
