//! Certificates made at test time with rcgen: a centre CA with a good server certificate,
//! an expired one and one for the wrong name; an agent CA with a client certificate; and
//! a rogue CA nobody trusts, with its own server and client certificates.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use std::path::{Path, PathBuf};

/// A certificate and its key, written as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every file a TLS test needs, in one directory.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The centre's CA (trusted by clients with --ca-cert).
    pub ca: PathBuf,
    /// For 127.0.0.1, signed by the centre's CA, valid now.
    pub server: CertFiles,
    /// For 127.0.0.1, signed by the centre's CA, expired on 2021-01-01.
    pub expired: CertFiles,
    /// For berth.other.example only, signed by the centre's CA.
    pub wrong_name: CertFiles,
    /// The CA that signs agents' client certificates (--agent-ca).
    pub agent_ca: PathBuf,
    /// An agent's client certificate, signed by the agent CA.
    pub agent: CertFiles,
    /// A CA trusted by nobody.
    pub rogue_ca: PathBuf,
    /// An agent certificate signed by the rogue CA.
    pub rogue_agent: CertFiles,
}

/// A calendar date: year, month, day.
type Date = (i32, u8, u8);

struct Ca {
    params: CertificateParams,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Self {
            params,
            key: KeyPair::generate().expect("CA key"),
        }
    }

    fn write(&self, path: &Path) {
        let cert = self.params.self_signed(&self.key).expect("self-sign CA");
        std::fs::write(path, cert.pem()).expect("write CA");
    }

    /// Issues a certificate for `names` with `usage`, optionally valid only in `window`.
    fn issue(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        window: Option<(Date, Date)>,
        dir: &Path,
        stem: &str,
    ) -> CertFiles {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, stem);
        params.extended_key_usages = vec![usage];
        if let Some(((y0, m0, d0), (y1, m1, d1))) = window {
            params.not_before = date_time_ymd(y0, m0, d0);
            params.not_after = date_time_ymd(y1, m1, d1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("sign leaf");
        let files = CertFiles {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write cert");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }
}

impl TestPki {
    /// Makes every certificate and key under `dir`.
    pub fn create(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("pki dir");
        let server = ExtendedKeyUsagePurpose::ServerAuth;
        let client = ExtendedKeyUsagePurpose::ClientAuth;
        let centre = Ca::new("Berth test centre CA");
        let agents = Ca::new("Berth test agent CA");
        let rogue = Ca::new("Rogue CA");
        let pki = TestPki {
            ca: dir.join("ca.pem"),
            server: centre.issue(&["127.0.0.1"], server.clone(), None, dir, "server"),
            expired: centre.issue(
                &["127.0.0.1"],
                server.clone(),
                Some(((2020, 1, 1), (2021, 1, 1))),
                dir,
                "expired",
            ),
            wrong_name: centre.issue(
                &["berth.other.example"],
                server.clone(),
                None,
                dir,
                "wrong-name",
            ),
            agent_ca: dir.join("agent-ca.pem"),
            agent: agents.issue(
                &["gpu-01.agents.example"],
                client.clone(),
                None,
                dir,
                "agent",
            ),
            rogue_ca: dir.join("rogue-ca.pem"),
            rogue_agent: rogue.issue(&["gpu-01.agents.example"], client, None, dir, "rogue-agent"),
        };
        centre.write(&pki.ca);
        agents.write(&pki.agent_ca);
        rogue.write(&pki.rogue_ca);
        pki
    }
}
