//! Names the configuration checks: Cedar identifiers, and pool names turned into namespaces.

/// `merchant-staff` → `MerchantStaff`.
pub fn pascal_case(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Whether `s` is a Cedar identifier (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_become_pascal_case_namespaces() {
        assert_eq!(pascal_case("merchant"), "Merchant");
        assert_eq!(pascal_case("merchant-staff"), "MerchantStaff");
        assert_eq!(pascal_case("wallet_users"), "WalletUsers");
    }
}
