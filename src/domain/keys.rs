//! API keys: `cck_<key id>_<secret>`. The id finds the key; only a keyed
//! BLAKE3 hash of the secret is stored. BLAKE3 is fast, which is right for
//! 256-bit random secrets (nothing to brute-force), unlike a password hash
//! that would cost milliseconds on every request.

/// A key as handed to its owner once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// Public id.
    pub key_id: String,
    /// The whole token to send (`cck_<id>_<secret>`).
    pub token: String,
    /// What to store.
    pub secret_hash: String,
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)?;
    Ok(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes a secret with the deployment's hashing key.
pub fn hash_secret(hash_key: &[u8; 32], secret: &str) -> String {
    blake3::keyed_hash(hash_key, secret.as_bytes())
        .to_hex()
        .to_string()
}

/// Makes a new key.
pub fn generate(hash_key: &[u8; 32]) -> Result<NewKey, getrandom::Error> {
    let key_id = hex(&random_bytes::<6>()?);
    let secret = hex(&random_bytes::<32>()?);
    Ok(NewKey {
        token: format!("cck_{key_id}_{secret}"),
        secret_hash: hash_secret(hash_key, &secret),
        key_id,
    })
}

/// Splits a token into (key id, secret), if it has the right shape.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.trim().strip_prefix("cck_")?;
    let (id, secret) = rest.split_once('_')?;
    let hexish = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexish(id, 12) && hexish(secret, 64)).then_some((id, secret))
}

/// Compares two hashes in constant time.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_verify() {
        let k = [7u8; 32];
        let key = generate(&k).unwrap();
        let (id, secret) = parse(&key.token).unwrap();
        assert_eq!(id, key.key_id);
        assert!(same_hash(&hash_secret(&k, secret), &key.secret_hash));
        assert!(
            !same_hash(&hash_secret(&[8u8; 32], secret), &key.secret_hash),
            "the hash is keyed"
        );
        for bad in [
            "",
            "cck_",
            "cck_zz_yy",
            "Bearer x",
            &key.token[..key.token.len() - 1],
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
