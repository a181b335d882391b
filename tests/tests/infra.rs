//! `infra/` cannot drift from the binaries: every rotator binary has exactly one function in the
//! SAM template and one in the Terraform module, on provided.al2023 with the `bootstrap` handler
//! and Secrets Manager's invoke permission, and every environment variable they set is one the
//! binary reads and the README documents.

use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (crate directory, binary name) of every rotator.
fn rotators() -> Vec<(String, String)> {
    let found: Vec<_> = e2e::rotators::all()
        .iter()
        .map(|r| (r.package.clone(), r.binary.clone()))
        .collect();
    assert!(found.len() >= 3, "{found:?}");
    found
}

/// What each binary reads from its environment.
fn reads(binary: &str) -> BTreeSet<&'static str> {
    e2e::rotators::by_binary(binary).reads()
}

fn tagged_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(t) => tagged_str(&t.value),
        other => format!("{other:?}"),
    }
}

#[test]
fn every_variable_a_binary_reads_is_documented() {
    let readme = read("README.md");
    for (_, bin) in rotators() {
        for var in reads(&bin) {
            assert!(
                readme.contains(&format!("`{var}`")),
                "README.md does not document {var} ({bin})"
            );
        }
    }
}

/// The README's environment table (`## Configuration`): every variable a row's first cell names,
/// with that row's default cell.
fn documented_variables() -> BTreeMap<String, String> {
    let readme = read("README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README.md has a Configuration section");
    let mut vars = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
        let default = cells.get(1).map(|c| c.trim()).unwrap_or_default();
        for name in cells[0].split('`').skip(1).step_by(2) {
            vars.insert(name.to_owned(), default.to_owned());
        }
    }
    assert!(vars.len() > 10, "{vars:?}");
    vars
}

/// #23.9: the table names only variables a binary reads, and the defaults it names are the code's
/// (where the code holds the default in one place a test can reach).
#[test]
fn the_readme_table_names_read_variables_with_the_codes_defaults() {
    let table = documented_variables();
    let read_somewhere: BTreeSet<&str> = rotators().iter().flat_map(|(_, b)| reads(b)).collect();
    for var in table.keys() {
        assert!(
            read_somewhere.contains(var.as_str()),
            "README.md documents {var}, which no binary reads"
        );
    }
    let policy = shared::password::PasswordPolicy::default();
    let finish_action =
        iam_access_key::OldKeyAction::parse(None, shared::config::Retire::Finish).unwrap();
    let defaults = [
        ("PASSWORD_LENGTH", policy.length.to_string()),
        ("EXCLUDE_CHARACTERS", policy.exclude_characters.clone()),
        ("EXCLUDE_NUMBERS", policy.exclude_numbers.to_string()),
        (
            "EXCLUDE_PUNCTUATION",
            policy.exclude_punctuation.to_string(),
        ),
        ("EXCLUDE_UPPERCASE", policy.exclude_uppercase.to_string()),
        ("EXCLUDE_LOWERCASE", policy.exclude_lowercase.to_string()),
        (
            "REQUIRE_EACH_INCLUDED_TYPE",
            policy.require_each_included_type.to_string(),
        ),
        (
            "METRICS_NAMESPACE",
            shared::telemetry::DEFAULT_NAMESPACE.to_owned(),
        ),
        (
            "RETIRE_PREVIOUS",
            shared::config::Retire::DEFAULT.as_str().to_owned(),
        ),
        (
            "RETIRE_PREVIOUS_MIN_AGE_SECONDS",
            shared::config::RETIRE_MIN_AGE_DEFAULT.as_secs().to_string(),
        ),
        (
            "OLD_KEY_ACTION",
            format!("{finish_action:?}").to_lowercase(),
        ),
    ];
    for (var, want) in defaults {
        let cell = table
            .get(var)
            .unwrap_or_else(|| panic!("README.md's table lacks {var}"));
        assert!(
            cell.starts_with(&format!("`{want}`")),
            "README.md gives {var} the default {cell}; the code's is `{want}`"
        );
    }
}

#[test]
fn the_sam_template_has_one_function_per_binary() {
    let template: Value = serde_yaml::from_str(&read("infra/template.yaml")).unwrap();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], Value::from("provided.al2023"));
    assert_eq!(globals["Handler"], Value::from("bootstrap"));
    let global_env: BTreeSet<String> = globals["Environment"]["Variables"]
        .as_mapping()
        .map(|m| m.keys().map(tagged_str).collect())
        .unwrap_or_default();
    let resources = template["Resources"].as_mapping().unwrap();
    let functions: Vec<(&Value, &Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .collect();
    assert_eq!(
        functions.len(),
        rotators().len(),
        "one function per binary, no stale ones"
    );
    for (dir, bin) in rotators() {
        let matching: Vec<_> = functions
            .iter()
            .filter(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == bin.as_str())
            .collect();
        assert_eq!(matching.len(), 1, "{bin}: functions {matching:?}");
        let (name, f) = matching[0];
        assert_eq!(
            f["Metadata"]["BuildMethod"],
            Value::from("rust-cargolambda"),
            "{bin}"
        );
        assert_eq!(
            f["Properties"]["CodeUri"],
            Value::from(format!("../rotators/{dir}")),
            "{bin}"
        );
        let own_env: BTreeSet<String> = f["Properties"]["Environment"]["Variables"]
            .as_mapping()
            .map(|m| m.keys().map(tagged_str).collect())
            .unwrap_or_default();
        let allowed = reads(&bin);
        for var in global_env.iter().chain(&own_env) {
            assert!(
                allowed.contains(var.as_str()),
                "{bin} is given {var}, which it does not read"
            );
        }
        let name = tagged_str(name);
        let permitted = resources.values().any(|r| {
            r["Type"] == "AWS::Lambda::Permission"
                && r["Properties"]["Principal"] == "secretsmanager.amazonaws.com"
                && format!("{:?}", r["Properties"]["FunctionName"]).contains(&name)
                && !r["Properties"]["SourceAccount"].is_null()
        });
        assert!(
            permitted,
            "{bin}: no Secrets Manager invoke permission with SourceAccount"
        );
    }
}

#[test]
fn the_terraform_module_has_one_function_per_binary() {
    let main = read("infra/terraform/main.tf");
    assert!(main.contains("runtime          = \"provided.al2023\""));
    assert!(main.contains("handler          = \"bootstrap\""));
    assert!(main.contains("principal      = \"secretsmanager.amazonaws.com\""));
    assert!(main.contains("source_account = local.account"));
    let binaries: Vec<&str> = main
        .lines()
        .filter_map(|l| l.trim().strip_prefix("binary      = \""))
        .map(|b| b.trim_end_matches('"'))
        .collect();
    let want: Vec<String> = rotators().into_iter().map(|(_, b)| b).collect();
    let mut got: Vec<String> = binaries.iter().map(|b| b.to_string()).collect();
    got.sort();
    assert_eq!(got, want, "one entry in local.rotators per binary");
    // Every UPPER_CASE key set in an environment map must be read by some binary.
    let all: BTreeSet<&str> = want.iter().flat_map(|b| reads(b)).collect();
    let code: String = main
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for word in code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let is_var = word.len() > 3
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && word.contains('_');
        if is_var {
            assert!(
                all.contains(word),
                "main.tf sets {word}, which no binary reads"
            );
        }
    }
}

/// The DB function's statements in the SAM template, as YAML text (conditions included).
fn sam_policy_text(function: &str) -> String {
    let template: Value = serde_yaml::from_str(&read("infra/template.yaml")).unwrap();
    let f = &template["Resources"][function]["Properties"]["Policies"];
    serde_yaml::to_string(f).unwrap()
}

/// RDS-managed master secrets: the DB function may read the master secret's tags and look up its
/// database, in both templates; the customer KMS keys are a list (master, App-key and rotated
/// secrets may each use their own); no parameter asks for a file inside the package.
#[test]
fn infra_allows_what_rds_managed_masters_and_several_kms_keys_need() {
    let db = sam_policy_text("DbPasswordFunction");
    for action in [
        "rds:DescribeDBInstances",
        "rds:DescribeDBClusters",
        "secretsmanager:DescribeSecret",
    ] {
        assert!(db.contains(action), "SAM DB policy lacks {action}:\n{db}");
    }
    let tf = read("infra/terraform/main.tf");
    for action in ["rds:DescribeDBInstances", "rds:DescribeDBClusters"] {
        assert!(tf.contains(action), "Terraform lacks {action}");
    }
    let template: Value = serde_yaml::from_str(&read("infra/template.yaml")).unwrap();
    let params = template["Parameters"].as_mapping().unwrap();
    let kms = &template["Parameters"]["KmsKeyArns"];
    assert_eq!(kms["Type"].as_str(), Some("CommaDelimitedList"), "{kms:?}");
    let vars = read("infra/terraform/variables.tf");
    assert!(
        vars.contains("variable \"kms_key_arns\" {") && vars.contains("list(string)"),
        "Terraform takes a list of KMS keys"
    );
    for (name, p) in params {
        let text = p["Description"].as_str().unwrap_or_default().to_lowercase();
        assert!(
            !text.contains("inside the function package") && !text.contains("path of the pem"),
            "{name:?} asks for a path inside the package: {text}"
        );
    }
}

/// The translated template of a case of `scripts/lint_template.py`, made offline by the SAM
/// translator in `.venv` (the code CloudFormation runs for the transform).
fn translated(case: &str) -> serde_json::Value {
    let out = std::process::Command::new(workspace().join(".venv/bin/python"))
        .arg(workspace().join("scripts/lint_template.py"))
        .args(["show", case])
        .output()
        .expect("run scripts/lint_template.py with the venv's python (scripts/setup)");
    assert!(
        out.status.success(),
        "translating case {case}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every list a role's `ManagedPolicyArns` becomes, one per assignment of the conditions its
/// `Fn::If`s name (`AWS::NoValue` drops out), with that assignment.
fn managed_policy_lists(arns: &[serde_json::Value]) -> Vec<(BTreeMap<String, bool>, Vec<String>)> {
    let condition = |v: &serde_json::Value| v["Fn::If"][0].as_str().map(str::to_owned);
    let conditions: Vec<String> = arns
        .iter()
        .filter_map(condition)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let branch = |v: &serde_json::Value| match v {
        serde_json::Value::String(arn) => Some(arn.clone()),
        v if v["Ref"] == "AWS::NoValue" => None,
        other => panic!("unexpected managed policy {other}"),
    };
    (0..1u32 << conditions.len())
        .map(|mask| {
            let when: BTreeMap<String, bool> = conditions
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), mask >> i & 1 == 1))
                .collect();
            let list = arns
                .iter()
                .filter_map(|a| match condition(a) {
                    Some(c) => branch(&a["Fn::If"][if when[&c] { 1 } else { 2 }]),
                    None => branch(a),
                })
                .collect();
            (when, list)
        })
        .collect()
}

/// SAM adds AWSLambdaVPCAccessExecutionRole (the ENI rights) to the role of any function with a
/// `VpcConfig`, even one under `!If`; a template that lists it too gets a role with the same ARN
/// twice, which CloudFormation refuses (cfn-lint E3037), so every deploy in a VPC failed. Plain
/// cfn-lint never sees it: it checks the SAM resources as written.
#[test]
fn the_translated_sam_template_lints_clean_and_gives_the_db_role_its_eni_rights_once() {
    let vpc_access = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole";
    for case in ["defaults", "vpc"] {
        let template = translated(case);
        let resources = template["Resources"].as_object().unwrap();
        for (name, role) in resources
            .iter()
            .filter(|(_, r)| r["Type"] == "AWS::IAM::Role")
        {
            let arns = role["Properties"]["ManagedPolicyArns"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for (when, list) in managed_policy_lists(&arns) {
                let unique: BTreeSet<&String> = list.iter().collect();
                assert_eq!(
                    unique.len(),
                    list.len(),
                    "case {case}: {name} lists a managed policy twice when {when:?}: {list:?}"
                );
            }
        }
        if case == "vpc" {
            let db_role = resources["DbPasswordFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
                .as_str()
                .expect("the DB function's role is the one SAM makes");
            let arns = resources[db_role]["Properties"]["ManagedPolicyArns"]
                .as_array()
                .unwrap();
            for (when, list) in managed_policy_lists(arns) {
                if when.get("HasDbVpc") != Some(&false) {
                    assert!(
                        list.iter().any(|a| a == vpc_access),
                        "in a VPC the DB role lacks the ENI rights when {when:?}: {list:?}"
                    );
                }
            }
        }
    }
    // cfn-lint on every case's translation, with that case's parameter values.
    let lint = std::process::Command::new(workspace().join(".venv/bin/python"))
        .arg(workspace().join("scripts/lint_template.py"))
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
}

/// A value of the translated template with the pseudo parameters of a stack named `stack` in
/// us-east-1 (`Fn::Sub` only; anything else is not expected in a statement).
fn resolve(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        v if v["Fn::Sub"].is_string() => v["Fn::Sub"].as_str().unwrap().to_owned(),
        other => panic!("unexpected value in a statement: {other}"),
    };
    let text = text
        .replace("${AWS::StackName}", "stack")
        .replace("${AWS::Partition}", "aws")
        .replace("${AWS::Region}", "us-east-1")
        .replace("${AWS::AccountId}", "123456789012");
    assert!(!text.contains("${"), "unresolved: {text}");
    text
}

fn glob(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.starts_with(head)
                && (0..=value.len() - head.len()).any(|i| glob(tail, &value[head.len() + i..]))
        }
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::Array(a) => a.iter().map(resolve).collect(),
        v => vec![resolve(v)],
    }
}

/// The unconditional statements (no `Fn::If`) of a function's role in the translated defaults.
fn role_statements(template: &serde_json::Value, function: &str) -> Vec<serde_json::Value> {
    let resources = &template["Resources"];
    let role = resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{function}'s role is the one SAM makes"));
    let mut found = Vec::new();
    for policy in resources[role]["Properties"]["Policies"]
        .as_array()
        .unwrap()
    {
        for s in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
            if s.get("Fn::If").is_none() {
                assert_eq!(s["Effect"], "Allow", "{s}");
                found.push(s.clone());
            }
        }
    }
    found
}

/// IAM's answer for an identity policy of Allow statements whose conditions are `StringEquals`:
/// allowed when a statement matches the action and resource and every condition key it names is
/// in `context` with a listed value (a key absent from the request never matches).
fn allowed(
    statements: &[serde_json::Value],
    action: &str,
    resource: &str,
    context: &[(&str, &str)],
) -> bool {
    statements.iter().any(|s| {
        let conditions = s["Condition"].as_object().cloned().unwrap_or_default();
        strings(&s["Action"]).iter().any(|a| glob(a, action))
            && strings(&s["Resource"]).iter().any(|r| glob(r, resource))
            && conditions.iter().all(|(op, keys)| {
                assert_eq!(op, "StringEquals", "no evaluator for {op} in {s}");
                keys.as_object().unwrap().iter().all(|(key, want)| {
                    context
                        .iter()
                        .any(|(k, v)| k == key && strings(want).iter().any(|w| w == v))
                })
            })
    })
}

/// The pre-flight before a secret is switched from another rotation function (AWS's SAR app) to
/// this one: Secrets Manager then gives `AllowRotationLambdaArn` as the other function, so every
/// read was denied. A secret tagged `rotation:preflight` = this function's name may be read, and
/// only read; a tag naming another function gives nothing.
#[test]
fn the_preflight_may_read_a_secret_tagged_for_it_before_the_switch_and_never_write() {
    let template = translated("defaults");
    let functions: Vec<(String, String)> = template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Lambda::Function")
        .map(|(id, r)| (id.clone(), resolve(&r["Properties"]["FunctionName"])))
        .collect();
    assert!(functions.len() >= 4, "{functions:?}");
    let secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-AbCdEf";
    let rotation_key = "secretsmanager:resource/AllowRotationLambdaArn";
    let sar = "arn:aws:lambda:us-east-1:123456789012:function:SecretsManagerRDSPostgreSQLRotationSingleUser";
    let tag = "aws:ResourceTag/rotation:preflight";
    let reads = [
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
    ];
    let writes = [
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
        "secretsmanager:ListSecretVersionIds",
    ];
    for (id, name) in &functions {
        let st = role_statements(&template, id);
        let own = format!("arn:aws:lambda:us-east-1:123456789012:function:{name}");
        // The evaluator sees today's grant: everything on a secret this function rotates.
        for action in reads.iter().chain(&writes) {
            assert!(
                allowed(&st, action, secret, &[(rotation_key, &own)]),
                "{id}: {action}"
            );
        }
        for context in [vec![], vec![(rotation_key, sar)]] {
            for action in reads.iter().chain(&writes) {
                assert!(
                    !allowed(&st, action, secret, &context),
                    "{id}: {action} on an untagged secret with {context:?}"
                );
            }
            let mut tagged = context.clone();
            tagged.push((tag, name.as_str()));
            for action in reads {
                assert!(
                    allowed(&st, action, secret, &tagged),
                    "{id}: the pre-flight cannot {action} a secret tagged for it with {context:?}"
                );
            }
            for action in writes {
                assert!(
                    !allowed(&st, action, secret, &tagged),
                    "{id}: the tag grants {action}"
                );
            }
            let mut other = context.clone();
            other.push((tag, "stack-some-other-function"));
            for action in reads.iter().chain(&writes) {
                assert!(
                    !allowed(&st, action, secret, &other),
                    "{id}: a tag naming another function grants {action}"
                );
            }
        }
    }
    // Terraform: the same statement, read-only, keyed on the function's name.
    let tf = read("infra/terraform/main.tf");
    let at = tf
        .find("Sid       = \"PreflightReadsSecretsTaggedForIt\"")
        .expect("Terraform grants the pre-flight's reads on tagged secrets");
    let statement = &tf[at..at + tf[at..].find("\n        },").unwrap()];
    assert!(
        statement.contains(
            "Action    = [\"secretsmanager:DescribeSecret\", \"secretsmanager:GetSecretValue\"]"
        ) && statement.contains(
            "{ \"aws:ResourceTag/rotation:preflight\" = \"${var.name_prefix}-${each.key}\" }"
        ),
        "{statement}"
    );
}

/// `iam:SimulatePrincipalPolicy` (the pre-flight's write check) on the function's own role only,
/// not every role of the stack.
#[test]
fn each_function_may_simulate_only_its_own_role() {
    let template = translated("defaults");
    let resources = template["Resources"].as_object().unwrap();
    let functions: Vec<&String> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Lambda::Function")
        .map(|(id, _)| id)
        .collect();
    let role_arn = |f: &str| format!("arn:aws:iam::123456789012:role/stack-{f}Role-1A2B3C4D5E6F");
    for f in &functions {
        let st = role_statements(&template, f);
        for g in &functions {
            // GetRole: the pre-flight's way to the role's ARN with its path.
            for action in ["iam:SimulatePrincipalPolicy", "iam:GetRole"] {
                assert_eq!(
                    allowed(&st, action, &role_arn(g), &[]),
                    f == g,
                    "{f}: {action} on {g}'s role"
                );
            }
        }
    }
}

/// No literal `arn:aws:`: GovCloud (`aws-us-gov`) and China (`aws-cn`) have other partitions.
#[test]
fn no_template_names_the_aws_partition_literally() {
    let mut files = vec!["infra/template.yaml".to_string()];
    for entry in std::fs::read_dir(workspace().join("infra/terraform")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "tf") {
            files.push(format!(
                "infra/terraform/{}",
                path.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    for file in files {
        for (n, line) in read(&file).lines().enumerate() {
            assert!(!line.contains("arn:aws:"), "{file}:{}: {line}", n + 1);
        }
    }
}

/// The text of a top-level Terraform block, from `header` to its closing brace.
fn tf_block<'a>(text: &'a str, header: &str) -> &'a str {
    let at = text.find(header).unwrap_or_else(|| panic!("no {header}"));
    let end = text[at..].find("\n}\n").map_or(text.len(), |e| at + e + 2);
    &text[at..end]
}

fn terraform() -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(workspace().join("infra/terraform")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "tf") {
            all.push_str(&std::fs::read_to_string(path).unwrap());
            all.push('\n');
        }
    }
    all
}

/// What the README promises is settable: the password settings (the SAR apps'
/// `excludeCharacters`), lists where Terraform has lists, a permissions boundary on every role, and
/// a CA bundle from a file (a layer) when it is too large for Lambda's 4 KB of environment.
#[test]
fn the_templates_expose_password_settings_lists_a_boundary_and_a_ca_file() {
    let template: Value = serde_yaml::from_str(&read("infra/template.yaml")).unwrap();
    let params = &template["Parameters"];
    for name in [
        "PasswordLength",
        "ExcludeCharacters",
        "PermissionsBoundaryArn",
        "DbCaBundleLayerArn",
        "DbCaBundleFile",
    ] {
        assert!(params[name].is_mapping(), "no parameter {name}");
    }
    for name in ["DbMasterSecretArn", "GitHubAppKeySecretArn", "KmsKeyArns"] {
        assert_eq!(
            params[name]["Type"].as_str(),
            Some("CommaDelimitedList"),
            "{name}"
        );
    }
    let t = translated("everything");
    let resources = t["Resources"].as_object().unwrap();
    for f in ["DbPasswordFunction", "RandomPasswordFunction"] {
        let env = &resources[f]["Properties"]["Environment"]["Variables"];
        for (var, param) in [
            ("PASSWORD_LENGTH", "PasswordLength"),
            ("EXCLUDE_CHARACTERS", "ExcludeCharacters"),
        ] {
            assert_eq!(env[var]["Fn::If"][1]["Ref"], param, "{f} {var}: {env}");
        }
    }
    let db = &resources["DbPasswordFunction"]["Properties"];
    let env = &db["Environment"]["Variables"];
    assert_eq!(
        env["DB_MASTER_SECRET_ARNS"]["Fn::If"][1],
        serde_json::json!({"Fn::Join": [",", {"Ref": "DbMasterSecretArn"}]}),
        "the function reads the list comma-separated"
    );
    assert_eq!(
        env["DB_CA_BUNDLE_FILE"]["Fn::If"][1]["Ref"],
        "DbCaBundleFile"
    );
    assert_eq!(db["Layers"]["Fn::If"][1][0]["Ref"], "DbCaBundleLayerArn");
    let roles: Vec<_> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::Role")
        .collect();
    assert!(roles.len() >= 5, "{}", roles.len());
    for (name, role) in roles {
        assert_eq!(
            role["Properties"]["PermissionsBoundary"]["Fn::If"][1]["Ref"], "PermissionsBoundaryArn",
            "{name} has no permissions boundary"
        );
    }

    let tf = terraform();
    for var in [
        "password_length",
        "exclude_characters",
        "permissions_boundary_arn",
        "db_ca_bundle_file",
        "db_ca_bundle_layer_arn",
    ] {
        tf_block(&tf, &format!("variable \"{var}\" {{"));
    }
    let main = read("infra/terraform/main.tf");
    for text in [
        "PASSWORD_LENGTH = tostring(var.password_length)",
        "EXCLUDE_CHARACTERS = var.exclude_characters",
        "DB_CA_BUNDLE_FILE = var.db_ca_bundle_file",
        "[var.db_ca_bundle_layer_arn]",
    ] {
        assert!(main.contains(text), "main.tf lacks {text}");
    }
    let mut rest = tf.as_str();
    let mut roles = 0;
    while let Some(at) = rest.find("resource \"aws_iam_role\" ") {
        let block = tf_block(rest, &rest[at..at + 30]);
        assert!(
            block.contains("permissions_boundary = var.permissions_boundary_arn"),
            "{block}"
        );
        roles += 1;
        rest = &rest[at + 1..];
    }
    assert!(roles >= 2, "{roles}");
}

/// The example secrets hold the operator's real values (an App id of 1 failed every refresh, an
/// empty DB password every rotation); Terraform's examples survive rotation (no plan puts the
/// initial value or label back) and destroy (the rotator made the user's later keys).
#[test]
fn the_example_secrets_take_real_values_and_survive_rotation_and_destroy() {
    let text = read("infra/template.yaml");
    let template: Value = serde_yaml::from_str(&text).unwrap();
    let gh = serde_yaml::to_string(&template["Resources"]["ExampleGitHubTokenSecret"]).unwrap();
    assert!(
        gh.contains("${ExampleGitHubAppId}")
            && gh.contains("${ExampleGitHubInstallationId}")
            && !gh.contains("\"app_id\": 1,"),
        "{gh}"
    );
    let rules = serde_yaml::to_string(&template["Rules"]).unwrap();
    assert!(
        rules.contains("ExampleDbPassword") && rules.contains("ExampleGitHubInstallationId"),
        "no rule asks for the examples' real values: {rules}"
    );
    let tf = terraform();
    let examples = read("infra/terraform/examples.tf");
    assert!(
        !examples.contains("app_id                 = 1\n")
            && !examples.contains("\"github:app-id\"                 = \"1\""),
        "a made-up App id in examples.tf"
    );
    assert!(examples.contains("app_id                 = var.example_github.app_id"));
    let version = tf_block(
        &examples,
        "resource \"aws_secretsmanager_secret_version\" \"example\"",
    );
    assert!(
        version.contains("ignore_changes = [secret_string, version_stages]"),
        "{version}"
    );
    let user = tf_block(&examples, "resource \"aws_iam_user\" \"example\"");
    assert!(user.contains("force_destroy = true"), "{user}");
    let db = tf_block(&tf, "variable \"example_db\" {");
    assert!(db.contains("var.example_db.password != \"\""), "{db}");
}

/// Terraform inputs that would fail late are validated; role ARNs are outputs; the module has a
/// README naming every input and output.
#[test]
fn the_terraform_module_validates_its_inputs_outputs_role_arns_and_has_a_readme() {
    let tf = terraform();
    for var in [
        "name_prefix",
        "architecture",
        "db_master_secret_arns",
        "db_ca_bundle_pem",
        "db_ca_bundle_file",
        "db_ca_bundle_layer_arn",
        "password_length",
        "permissions_boundary_arn",
        "iam_user_path",
        "retire_previous",
        "old_key_action",
        "kms_key_arns",
        "log_retention_days",
        "alarm_topic_arn",
        "rotation_schedule",
        "example_db",
        "example_github",
        "github_api_url",
        "github_app_key_secret_arns",
        "github_token_rotation_minutes",
    ] {
        let block = tf_block(&tf, &format!("variable \"{var}\" {{"));
        assert!(block.contains("validation {"), "{var} has no validation");
    }
    let outputs = read("infra/terraform/outputs.tf");
    let roles = tf_block(&outputs, "output \"role_arns\" {");
    assert!(roles.contains("aws_iam_role.rotator"), "{roles}");
    let readme = read("infra/terraform/README.md");
    for line in tf.lines() {
        for kind in ["variable \"", "output \""] {
            if let Some(name) = line.strip_prefix(kind) {
                let name = name.split('"').next().unwrap();
                assert!(
                    readme.contains(&format!("`{name}`")),
                    "infra/terraform/README.md does not name {name}"
                );
            }
        }
    }
}

/// Whether condition `name` holds only when `target` does: it is `target`, or an `!And` that
/// names it (directly or through another condition).
fn implies(conditions: &Value, name: &str, target: &str, depth: u32) -> bool {
    if name == target {
        return true;
    }
    let Value::Tagged(t) = &conditions[name] else {
        return false;
    };
    depth < 5
        && t.tag == "!And"
        && t.value
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|c| match c {
                Value::Tagged(c) if c.tag == "!Condition" => implies(
                    conditions,
                    c.value.as_str().unwrap_or_default(),
                    target,
                    depth + 1,
                ),
                _ => false,
            })
}

/// Deploy only what you need: one switch per rotator in both templates, and nothing left behind
/// that names a function the switch removed (cfn-lint checks the references per condition on the
/// translated `db-only` and `github-only` cases of scripts/lint_template.py).
#[test]
fn each_rotator_has_a_switch_in_both_templates() {
    let template: Value = serde_yaml::from_str(&read("infra/template.yaml")).unwrap();
    let conditions = &template["Conditions"];
    let resources = template["Resources"].as_mapping().unwrap();
    let functions: Vec<String> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, _)| id.as_str().unwrap().to_owned())
        .collect();
    assert!(functions.len() >= 4, "{functions:?}");
    for f in &functions {
        let switch = template["Resources"][f.as_str()]["Condition"]
            .as_str()
            .unwrap_or_else(|| panic!("{f} is always deployed"));
        let Value::Tagged(def) = &conditions[switch] else {
            panic!("{switch} is not !Equals")
        };
        let param = tagged_str(&def.value[0]);
        assert_eq!(
            template["Parameters"][param.as_str()]["Default"].as_str(),
            Some("true"),
            "{f}: {switch} should be a parameter, deployed by default"
        );
        // Whatever names the function (its permission, logs, alarms, examples, schedules,
        // outputs) goes with it.
        let sections = [&template["Resources"], &template["Outputs"]];
        for section in sections {
            for (id, r) in section.as_mapping().unwrap() {
                let id = id.as_str().unwrap();
                let text = serde_yaml::to_string(r).unwrap();
                let names_it = id.starts_with(f.trim_end_matches("Function"))
                    || text.contains(&format!("{f}.Arn"))
                    || text.contains(&format!("{f}Role"))
                    || text.contains(&format!("!Ref {f}\n"))
                    || text.contains(&format!(
                        "DependsOn: {}",
                        f.replace("Function", "InvokePermission")
                    ));
                if names_it && id != f {
                    let c = r["Condition"].as_str().unwrap_or_default();
                    assert!(
                        implies(conditions, c, switch, 0),
                        "{id} names {f} but its condition `{c}` does not imply {switch}"
                    );
                }
            }
        }
    }
    let lint = read("scripts/lint_template.py");
    assert!(lint.contains("\"db-only\"") && lint.contains("\"github-only\""));

    let vars = read("infra/terraform/variables.tf");
    tf_block(&vars, "variable \"rotators\" {");
    let tf = terraform();
    assert!(
        tf.contains("rotators = { for k, v in local.all_rotators : k => v if var.rotators == null || contains("),
        "local.rotators is not filtered by var.rotators"
    );
    // A resource naming one rotator's function or role exists only when that rotator does.
    // A local's definition: its line and the more indented ones after it.
    let local_def = |name: &str| -> String {
        let key = format!("\n  {name} ");
        let Some(at) = tf.find(&key) else {
            return String::new();
        };
        let mut lines = tf[at + 1..].lines();
        let mut def = lines.next().unwrap_or_default().to_owned();
        for l in lines {
            if !l.starts_with("   ") {
                break;
            }
            def.push_str(l);
        }
        def
    };
    fn gated(expr: &str, key: &str, local_def: &dyn Fn(&str) -> String, depth: u32) -> bool {
        expr.contains(&format!("local.deploys[\"{key}\"]"))
            || (depth < 4
                && expr.split("local.").skip(1).any(|rest| {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    name != "rotators" && gated(&local_def(&name), key, local_def, depth + 1)
                }))
    }
    let mut checked = 0;
    for block in tf.split("\nresource ").skip(1) {
        let block = &block[..block.find("\n}\n").unwrap_or(block.len())];
        for key in [
            "db-password",
            "iam-access-key",
            "github-token",
            "random-password",
        ] {
            let names = block.contains(&format!("rotator[\"{key}\"]"));
            if !names {
                continue;
            }
            let gate = block
                .lines()
                .find(|l| {
                    l.trim_start().starts_with("count") || l.trim_start().starts_with("for_each")
                })
                .unwrap_or_default();
            assert!(
                gated(gate, key, &local_def, 0),
                "resource {} names the {key} rotator but exists without it ({gate})",
                block.lines().next().unwrap_or_default()
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "{checked}");
}

/// scripts/deploy and scripts/package install what a build needs, not the test stack
/// (PostgreSQL, MariaDB, npm, the linters: scripts/setup).
#[test]
fn deploy_and_package_install_only_what_a_build_needs() {
    for script in ["scripts/deploy", "scripts/package"] {
        let text = read(script);
        let code: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        assert!(
            !code
                .iter()
                .any(|l| l.split_whitespace().any(|w| w == "scripts/setup")),
            "{script} runs scripts/setup"
        );
        assert!(
            code.iter().any(|l| l.trim() == "scripts/setup-build"),
            "{script}"
        );
    }
    let setup = read("scripts/setup-build");
    let code: Vec<&str> = setup
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    for word in ["apt-get", "postgres", "mariadb", "npm", "requirements.txt"] {
        assert!(
            !code.iter().any(|l| l.contains(word)),
            "scripts/setup-build installs {word}"
        );
    }
}

/// The zips of scripts/package deploy with SAM too (`sam deploy -t target/lambda/<arch>/
/// template.yaml`), so SAM and Terraform ship the same build: every function points at its zip,
/// nothing asks for `sam build`, the architecture is the directory's, and cfn-lint accepts it.
#[test]
fn the_zips_of_scripts_package_deploy_with_sam_too() {
    let template: Value = serde_yaml::from_str(&read("infra/template.yaml")).unwrap();
    let binaries: Vec<String> = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::Function")
        .map(|r| {
            r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("zip-template-{}", std::process::id()));
    let out = dir.join("x86_64");
    for b in &binaries {
        std::fs::create_dir_all(out.join(b)).unwrap();
        std::fs::write(out.join(b).join("bootstrap.zip"), b"not really a zip").unwrap();
    }
    let python = workspace().join(".venv/bin/python");
    let run = std::process::Command::new(&python)
        .arg(workspace().join("scripts/zip_template.py"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(out.join("template.yaml")).unwrap();
    let made: Value = serde_yaml::from_str(&text).unwrap();
    assert!(!text.contains("rust-cargolambda"));
    assert_eq!(made["Globals"]["Function"]["Architectures"][0], "x86_64");
    for r in made["Resources"].as_mapping().unwrap().values() {
        if r["Type"] == "AWS::Serverless::Function" {
            let code = r["Properties"]["CodeUri"].as_str().unwrap();
            assert!(out.join(code).is_file(), "{code}");
        }
    }
    let readme = made["Metadata"]["AWS::ServerlessRepo::Application"]["ReadmeUrl"]
        .as_str()
        .unwrap();
    assert!(out.join(readme).is_file(), "{readme}");
    let lint = std::process::Command::new(workspace().join(".venv/bin/cfn-lint"))
        .arg(out.join("template.yaml"))
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stdout)
    );
    // A missing zip is named, not deployed.
    std::fs::remove_file(out.join(&binaries[0]).join("bootstrap.zip")).unwrap();
    let run = std::process::Command::new(&python)
        .arg(workspace().join("scripts/zip_template.py"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains(&binaries[0]));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(read("scripts/package").contains("scripts/zip_template.py"));
}

/// Shareable the way AWS's rotation templates are: AWS Serverless Application Repository metadata.
#[test]
fn the_template_carries_serverless_repo_metadata() {
    let template: Value = serde_yaml::from_str(&read("infra/template.yaml")).unwrap();
    let app = &template["Metadata"]["AWS::ServerlessRepo::Application"];
    for key in [
        "Name",
        "Description",
        "Author",
        "SemanticVersion",
        "SpdxLicenseId",
        "ReadmeUrl",
    ] {
        assert!(app[key].is_string(), "no {key}: {app:?}");
    }
    let license = read("Cargo.toml");
    let spdx = app["SpdxLicenseId"].as_str().unwrap();
    assert!(license.contains(&format!("license = \"{spdx}\"")), "{spdx}");
    let readme = workspace()
        .join("infra")
        .join(app["ReadmeUrl"].as_str().unwrap());
    assert!(readme.is_file(), "{}", readme.display());
}

/// Every Markdown page an operator reads: README.md and docs/ (the README's sections move there).
fn operator_docs() -> String {
    let mut text = read("README.md");
    let mut dirs = vec![workspace().join("docs")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                text.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    text
}

/// #23.5: an alarm for every way a rotation fails, in both templates. `StepFailed` comes only from
/// a function alive to emit it; Lambda's `Errors` also counts a timeout, an out-of-memory kill and
/// a failed start, `Throttles` an invocation Lambda refused, and Secrets Manager's own events a
/// function it could not invoke, a key it could not use, an abandoned rotation. All go to the
/// alarm topic; the README says what each catches.
#[test]
fn every_way_a_rotation_fails_alarms_in_both_templates() {
    let template: Value = serde_yaml::from_str(&read("infra/template.yaml")).unwrap();
    let conditions = &template["Conditions"];
    let resources = template["Resources"].as_mapping().unwrap();
    let to_topic = |r: &Value| {
        serde_yaml::to_string(&r["Properties"]["AlarmActions"])
            .unwrap()
            .contains("AlarmTopicArn")
    };
    let functions: Vec<(String, String)> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, r)| (tagged_str(id), tagged_str(&r["Condition"])))
        .collect();
    assert!(functions.len() >= 4, "{functions:?}");
    for (f, switch) in &functions {
        for metric in ["Errors", "Throttles"] {
            let alarms: Vec<&Value> = resources
                .values()
                .filter(|r| {
                    r["Type"] == "AWS::CloudWatch::Alarm"
                        && r["Properties"]["Namespace"] == "AWS/Lambda"
                        && r["Properties"]["MetricName"] == metric
                        && serde_yaml::to_string(&r["Properties"]["Dimensions"])
                            .unwrap()
                            .contains(&format!("FunctionName\n  Value: !Ref {f}\n"))
                })
                .collect();
            assert_eq!(alarms.len(), 1, "{f}: no AWS/Lambda {metric} alarm");
            let alarm = alarms[0];
            assert!(to_topic(alarm), "{f}'s {metric} alarm tells no topic");
            assert!(
                implies(
                    conditions,
                    alarm["Condition"].as_str().unwrap_or_default(),
                    switch,
                    0
                ),
                "{f}'s {metric} alarm outlives {switch}"
            );
        }
    }
    let rules: Vec<&Value> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::Events::Rule")
        .collect();
    assert_eq!(rules.len(), 1, "one rule on Secrets Manager's events");
    let rule = rules[0];
    let pattern = &rule["Properties"]["EventPattern"];
    assert_eq!(
        pattern["source"],
        serde_yaml::from_str::<Value>("[aws.secretsmanager]").unwrap()
    );
    // Events Secrets Manager makes itself, not API calls (AWS CloudTrail entries for Secrets
    // Manager, "Log entries for rotation").
    assert_eq!(
        pattern["detail-type"],
        serde_yaml::from_str::<Value>("[AWS Service Event via CloudTrail]").unwrap()
    );
    let names = serde_yaml::to_string(&pattern["detail"]["eventName"]).unwrap();
    for name in ["RotationFailed", "RotationAbandoned", "TestRotationFailed"] {
        assert!(names.contains(name), "the rule misses {name}: {names}");
    }
    assert_eq!(
        serde_yaml::to_string(&rule["Properties"]["Targets"][0]["Arn"]).unwrap(),
        "!Ref AlarmTopicArn\n"
    );
    let when = rule["Condition"].as_str().unwrap_or_default();
    assert!(
        implies(conditions, when, "HasAlarmTopic", 0),
        "a rule with no topic: {when}"
    );

    let tf = terraform();
    for metric in ["Errors", "Throttles"] {
        let at = tf
            .find(&format!("metric_name         = \"{metric}\""))
            .unwrap_or_else(|| panic!("Terraform has no {metric} alarm"));
        let start = tf[..at].rfind("\nresource ").unwrap();
        let block = tf_block(&tf[start + 1..], "resource ");
        for text in [
            "for_each            = local.rotators",
            "namespace           = \"AWS/Lambda\"",
            "dimensions          = { FunctionName = aws_lambda_function.rotator[each.key].function_name }",
            "alarm_actions       = var.alarm_topic_arn == \"\" ? [] : [var.alarm_topic_arn]",
        ] {
            assert!(block.contains(text), "{block}");
        }
    }
    let rule = tf_block(&tf, "resource \"aws_cloudwatch_event_rule\" ");
    for text in [
        "count       = var.alarm_topic_arn != \"\" && length(local.rotators) > 0 ? 1 : 0",
        "source        = [\"aws.secretsmanager\"]",
        "\"detail-type\" = [\"AWS Service Event via CloudTrail\"]",
        "eventName   = [\"RotationFailed\", \"RotationAbandoned\", \"TestRotationFailed\"]",
    ] {
        assert!(rule.contains(text), "{rule}");
    }
    let target = tf_block(&tf, "resource \"aws_cloudwatch_event_target\" ");
    assert!(
        target.contains("arn       = var.alarm_topic_arn"),
        "{target}"
    );

    let docs = operator_docs();
    for text in [
        "`AWS/Lambda` `Errors`",
        "`Throttles`",
        "`RotationFailed`",
        "`RotationAbandoned`",
        "`TestRotationFailed`",
        "events.amazonaws.com",
    ] {
        assert!(
            docs.contains(text),
            "the README does not say what {text} catches"
        );
    }
}

/// The previous credential's minimum age (`RETIRE_PREVIOUS_MIN_AGE_SECONDS`) is a setting of both
/// templates with the code's default, given to exactly the rotators that honour it: those whose
/// retirement asks `Versions::may_retire_previous`.
#[test]
fn the_previous_credentials_minimum_age_is_a_setting_of_both_templates() {
    const VAR: &str = "RETIRE_PREVIOUS_MIN_AGE_SECONDS";
    let default = shared::config::RETIRE_MIN_AGE_DEFAULT.as_secs();
    let honours = |dir: &str| {
        let src = workspace().join("rotators").join(dir).join("src");
        std::fs::read_dir(&src).unwrap().any(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap_or_default()
                .contains(".may_retire_previous(")
        })
    };
    let want: BTreeSet<String> = rotators()
        .into_iter()
        .filter(|(dir, _)| honours(dir))
        .map(|(dir, _)| dir)
        .collect();
    assert!(want.len() >= 3, "{want:?}");

    let template: Value = serde_yaml::from_str(&read("infra/template.yaml")).unwrap();
    let param = &template["Parameters"]["RetirePreviousMinAgeSeconds"];
    assert_eq!(param["Type"].as_str(), Some("Number"), "{param:?}");
    assert_eq!(param["Default"].as_u64(), Some(default), "{param:?}");
    assert_eq!(param["MinValue"].as_u64(), Some(0), "{param:?}");
    assert!(
        template["Globals"]["Function"]["Environment"]["Variables"][VAR].is_null(),
        "{VAR} in Globals reaches rotators that ignore it"
    );
    let given: BTreeSet<String> = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::Function")
        .filter(|r| {
            let v = &r["Properties"]["Environment"]["Variables"][VAR];
            serde_yaml::to_string(v).unwrap() == "!Ref RetirePreviousMinAgeSeconds\n"
        })
        .map(|r| {
            tagged_str(&r["Properties"]["CodeUri"])
                .trim_start_matches("../rotators/")
                .to_owned()
        })
        .collect();
    assert_eq!(given, want, "SAM functions given {VAR}");

    let tf = terraform();
    let var = tf_block(&tf, "variable \"retire_previous_min_age_seconds\" {");
    assert!(var.contains(&format!("default     = {default}\n")), "{var}");
    assert!(var.contains("validation {"), "{var}");
    let main = read("infra/terraform/main.tf");
    assert!(
        main.contains(&format!(
            "retire_env = {{ {VAR} = tostring(var.retire_previous_min_age_seconds) }}"
        )),
        "main.tf does not set {VAR} from the variable"
    );
    // Each rotator's entry in local.all_rotators, up to the next one.
    let mut given = BTreeSet::new();
    for (dir, _) in rotators() {
        let at = main
            .find(&format!("\n    \"{dir}\" = {{\n"))
            .unwrap_or_else(|| panic!("main.tf has no rotator {dir}"));
        let entry = &main[at + 1..];
        let entry = &entry[..entry.find("\n    }\n").unwrap()];
        if entry.contains("local.retire_env") {
            given.insert(dir);
        }
    }
    assert_eq!(given, want, "Terraform rotators given {VAR}");
}

/// The Redis rotator changes only the ElastiCache and MemoryDB users its lists name (#21): each
/// service's rights come with its own list and name those ARNs only, the same list fills the
/// function's allow-list, and no other statement grants either service anything.
#[test]
fn the_redis_role_changes_only_the_listed_elasticache_and_memorydb_users() {
    use serde_json::json;
    let t = translated("everything");
    let function = &t["Resources"]["RedisPasswordFunction"];
    let role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        .as_str()
        .unwrap();
    let statements: Vec<&serde_json::Value> = t["Resources"][role]["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap())
        .collect();
    let env = &function["Properties"]["Environment"]["Variables"];
    for (sid, condition, list, var, actions) in [
        (
            "ChangeNamedElastiCacheUsers",
            "HasElastiCacheUsers",
            "ElastiCacheUserArns",
            "ELASTICACHE_USER_ARNS",
            ["elasticache:ModifyUser", "elasticache:DescribeUsers"],
        ),
        (
            "ChangeNamedMemoryDbUsers",
            "HasMemoryDbUsers",
            "MemoryDbUserArns",
            "MEMORYDB_USER_ARNS",
            ["memorydb:UpdateUser", "memorydb:DescribeUsers"],
        ),
    ] {
        let found: Vec<_> = statements
            .iter()
            .filter(|s| s["Fn::If"][1]["Sid"] == sid)
            .collect();
        assert_eq!(found.len(), 1, "{sid}");
        let s = &found[0]["Fn::If"];
        assert_eq!(s[0], condition, "{sid}");
        assert_eq!(s[1]["Action"], json!(actions), "{sid}");
        assert_eq!(s[1]["Resource"], json!({"Ref": list}), "{sid}");
        assert_eq!(
            t["Conditions"][condition],
            json!({"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": list}]}, ""]}]}),
            "{condition}"
        );
        assert_eq!(
            env[var]["Fn::If"],
            json!([condition, {"Fn::Join": [",", {"Ref": list}]}, {"Ref": "AWS::NoValue"}]),
            "{var}"
        );
    }
    let unconditional = role_statements(&t, "RedisPasswordFunction");
    for (action, user) in [
        (
            "memorydb:UpdateUser",
            "arn:aws:memorydb:us-east-1:123456789012:user/app-1",
        ),
        (
            "elasticache:ModifyUser",
            "arn:aws:elasticache:us-east-1:123456789012:user:app-1",
        ),
    ] {
        assert!(!allowed(&unconditional, action, user, &[]), "{action}");
    }

    let main = read("infra/terraform/main.tf");
    for text in [
        r#"{ ELASTICACHE_USER_ARNS = join(",", var.elasticache_user_arns) }"#,
        r#"Action   = ["elasticache:ModifyUser", "elasticache:DescribeUsers"]"#,
        "Resource = var.elasticache_user_arns",
        r#"{ MEMORYDB_USER_ARNS = join(",", var.memorydb_user_arns) }"#,
        r#"Action   = ["memorydb:UpdateUser", "memorydb:DescribeUsers"]"#,
        "Resource = var.memorydb_user_arns",
    ] {
        assert!(main.contains(text), "main.tf lacks {text}");
    }
    let tf = terraform();
    let variable = tf_block(&tf, "variable \"memorydb_user_arns\" {");
    assert!(
        variable.contains(":memorydb:[^:]*:[^:]*:user/"),
        "{variable}"
    );
    assert!(
        !main.contains("\"memorydb:*\"") && !main.contains("\"elasticache:*\""),
        "no wildcard action"
    );
}

/// A value of the translated template under `params` (strings; a list parameter comma-joined),
/// with `Ref`s to resources as `ref:<id>`: `Ref`, `Fn::If`, `Fn::Join`, `Fn::Split`, the list
/// form of `Fn::Sub`, and conditions. `None` is `AWS::NoValue`.
fn evaluate(
    t: &serde_json::Value,
    params: &BTreeMap<&str, &str>,
    v: &serde_json::Value,
) -> Option<serde_json::Value> {
    use serde_json::{Value as J, json};
    let eval = |v: &J| evaluate(t, params, v);
    let text = |v: &J| match eval(v) {
        Some(J::String(s)) => s,
        other => panic!("not a string: {other:?} from {v}"),
    };
    let list = |v: &J| match eval(v) {
        Some(J::Array(items)) => items
            .iter()
            .filter_map(&eval)
            .map(|i| i.as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        other => panic!("not a list: {other:?} from {v}"),
    };
    let J::Object(map) = v else {
        return Some(v.clone());
    };
    let Some((key, arg)) = map.iter().next().filter(|_| map.len() == 1) else {
        return Some(v.clone());
    };
    Some(match key.as_str() {
        "Ref" => {
            let name = arg.as_str().unwrap();
            if name == "AWS::NoValue" {
                return None;
            }
            match &t["Parameters"][name] {
                J::Null => json!(format!("ref:{name}")),
                p => {
                    let value = params
                        .get(name)
                        .copied()
                        .unwrap_or_else(|| p["Default"].as_str().unwrap_or_default());
                    match p["Type"].as_str() {
                        Some("CommaDelimitedList") => json!(value.split(',').collect::<Vec<_>>()),
                        _ => json!(value),
                    }
                }
            }
        }
        "Condition" => json!(condition(t, params, arg.as_str().unwrap())),
        "Fn::Equals" => json!(eval(&arg[0]) == eval(&arg[1])),
        "Fn::Not" => json!(!eval(&arg[0]).unwrap().as_bool().unwrap()),
        "Fn::And" => json!(
            arg.as_array()
                .unwrap()
                .iter()
                .all(|c| eval(c) == Some(json!(true)))
        ),
        "Fn::Or" => json!(
            arg.as_array()
                .unwrap()
                .iter()
                .any(|c| eval(c) == Some(json!(true)))
        ),
        "Fn::If" => {
            let branch = if condition(t, params, arg[0].as_str().unwrap()) {
                1
            } else {
                2
            };
            return eval(&arg[branch]);
        }
        "Fn::Join" => json!(list(&arg[1]).join(arg[0].as_str().unwrap())),
        "Fn::Split" => json!(
            text(&arg[1])
                .split(arg[0].as_str().unwrap())
                .collect::<Vec<_>>()
        ),
        "Fn::Sub" if arg.is_array() => {
            let mut s = arg[0].as_str().unwrap().to_owned();
            for (name, value) in arg[1].as_object().unwrap() {
                s = s.replace(&format!("${{{name}}}"), &text(value));
            }
            json!(s)
        }
        _ => v.clone(),
    })
}

fn condition(t: &serde_json::Value, params: &BTreeMap<&str, &str>, name: &str) -> bool {
    evaluate(t, params, &t["Conditions"][name]) == Some(serde_json::json!(true))
}

/// #20 point 3: every token secret a user declares is refreshed by the templates' schedule, not
/// only the example, and the function's GITHUB_TOKEN_SECRET_ARNS (what the pre-flight reads) is
/// the very same list. SAM: the parameter and the example in every combination, evaluated on the
/// translated template. Terraform: the variable and the example feed one local that both the
/// schedule's input and the variable's environment take.
#[test]
fn every_declared_token_secret_is_refreshed_and_named_to_the_function() {
    let t = translated("everything");
    let resources = &t["Resources"];
    let schedule = &resources["GitHubTokenSchedule"];
    let function = &resources["GitHubTokenFunction"];
    let role = &resources[schedule["Properties"]["Target"]["RoleArn"]["Fn::GetAtt"][0]
        .as_str()
        .expect("the schedule's role is the template's")];
    let (a, b) = (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:ci-token-AbCdEf",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:deploy-token-GhIjKl",
    );
    let both = format!("{a},{b}");
    for example in [false, true] {
        for declared in ["", a, both.as_str()] {
            let mut params: BTreeMap<&str, &str> = BTreeMap::new();
            params.insert("GitHubTokenSecretArns", declared);
            if example {
                params.extend([
                    ("CreateExampleSecrets", "true"),
                    (
                        "GitHubAppKeySecretArn",
                        "arn:aws:secretsmanager:us-east-1:123456789012:secret:gh-app-*",
                    ),
                    ("ExampleGitHubAppId", "123456"),
                    ("ExampleGitHubInstallationId", "7890123"),
                ]);
            }
            let mut want: Vec<&str> = declared.split(',').filter(|s| !s.is_empty()).collect();
            if example {
                want.insert(0, "ref:ExampleGitHubTokenSecret");
            }
            let case = format!("example {example}, GitHubTokenSecretArns `{declared}`");
            let scheduled = condition(&t, &params, schedule["Condition"].as_str().unwrap());
            let env = evaluate(
                &t,
                &params,
                &function["Properties"]["Environment"]["Variables"]["GITHUB_TOKEN_SECRET_ARNS"],
            );
            if want.is_empty() {
                assert!(!scheduled && env.is_none(), "{case}: {env:?}");
                continue;
            }
            assert!(scheduled, "{case}: no schedule");
            assert!(
                condition(&t, &params, role["Condition"].as_str().unwrap()),
                "{case}: no scheduler role"
            );
            let input = evaluate(&t, &params, &schedule["Properties"]["Target"]["Input"]).unwrap();
            let input: serde_json::Value = serde_json::from_str(input.as_str().unwrap())
                .unwrap_or_else(|e| panic!("{case}: the input is not JSON: {e}: {input}"));
            assert_eq!(input["Step"], "refresh", "{case}");
            assert_eq!(input["SecretIds"], serde_json::json!(want), "{case}");
            assert_eq!(
                input["ScheduledTime"], "<aws.scheduler.scheduled-time>",
                "{case}"
            );
            assert_eq!(env, Some(serde_json::json!(want.join(","))), "{case}");
        }
    }
    // The scheduler may invoke the function and nothing else.
    let statements = &role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
    assert_eq!(statements.as_array().unwrap().len(), 1, "{statements}");
    assert_eq!(statements[0]["Action"], "lambda:InvokeFunction");
    assert_eq!(
        statements[0]["Resource"]["Fn::GetAtt"],
        serde_json::json!(["GitHubTokenFunction", "Arn"])
    );

    let tf = terraform();
    let list = tf_block(&tf, "  github_token_secret_arns = ");
    assert!(
        list.contains("var.github_token_secret_arns")
            && list.contains("aws_secretsmanager_secret.example[\"github-token\"].arn"),
        "{list}"
    );
    let schedules: Vec<&str> = tf.matches("resource \"aws_scheduler_schedule\"").collect();
    assert_eq!(schedules.len(), 1, "one schedule for every token secret");
    let tf_schedule = tf_block(&tf, "resource \"aws_scheduler_schedule\" \"github_token\"");
    assert!(
        tf_schedule.contains(
            "input    = jsonencode({ Step = \"refresh\", SecretIds = local.github_token_secret_arns, ScheduledTime = \"<aws.scheduler.scheduled-time>\" })"
        ) && tf_schedule.contains("count               = local.github_refresh ? 1 : 0"),
        "{tf_schedule}"
    );
    assert!(
        tf.contains("GITHUB_TOKEN_SECRET_ARNS = join(\",\", local.github_token_secret_arns)"),
        "the GitHub function's environment does not name the refreshed secrets"
    );
}

/// The Redis rotator's one trust opt-in is a setting of both templates, off by default: the
/// function sees `KEEP_UNPROVEN_CURRENT_PASSWORD` only when the operator says `true`.
#[test]
fn keeping_an_unproven_redis_password_is_an_opt_in_of_both_templates() {
    use serde_json::json;
    let t = translated("everything");
    let param = &t["Parameters"]["RedisKeepUnprovenCurrentPassword"];
    assert_eq!(param["Default"], "false", "{param}");
    assert_eq!(
        t["Conditions"]["KeepUnprovenRedisPassword"],
        json!({"Fn::Equals": [{"Ref": "RedisKeepUnprovenCurrentPassword"}, "true"]})
    );
    let env = &t["Resources"]["RedisPasswordFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        env["KEEP_UNPROVEN_CURRENT_PASSWORD"]["Fn::If"],
        json!(["KeepUnprovenRedisPassword", "true", {"Ref": "AWS::NoValue"}])
    );
    let tf = terraform();
    let variable = tf
        .split("variable \"redis_keep_unproven_current_password\" {")
        .nth(1)
        .expect("Terraform variable redis_keep_unproven_current_password");
    assert!(variable.contains("default     = false"), "{variable}");
    assert!(
        tf.contains(
            "var.redis_keep_unproven_current_password ? { KEEP_UNPROVEN_CURRENT_PASSWORD = \"true\" } : {}"
        ),
        "Terraform does not pass the opt-in to the Redis function"
    );
}

/// Each function rotates only the secrets its own `ROTATED_SECRET_ARNS` names (`shared::rotated`):
/// the templates fill it from that rotator's list (`<Rotator>SecretArns` /
/// `rotated_secret_arns["<rotator>"]`), its own example secret and, for the GitHub rotator, the
/// token secrets its schedule refreshes; never from another rotator's list, so a secret listed for
/// one function cannot be pointed at another. SAM: evaluated on the translated template, with and
/// without the lists and the examples, and read back with the function's own parser. Terraform:
/// every function's environment takes its own entry of the map.
#[test]
fn each_function_rotates_its_own_listed_secrets_its_example_and_nothing_else() {
    let t = translated("everything");
    let resources = &t["Resources"];
    let arn =
        |name: &str| format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf");
    let token = arn("ci-token");
    let other = arn("mine");
    let functions = [
        (
            "DbPasswordFunction",
            "DbPasswordSecretArns",
            Some("ExampleDbSecret"),
        ),
        (
            "IamAccessKeyFunction",
            "IamAccessKeySecretArns",
            Some("ExampleIamSecret"),
        ),
        (
            "GitHubTokenFunction",
            "GitHubDeployKeySecretArns",
            Some("ExampleGitHubTokenSecret"),
        ),
        (
            "RandomPasswordFunction",
            "RandomPasswordSecretArns",
            Some("ExampleRandomPasswordSecret"),
        ),
        ("RedisPasswordFunction", "RedisPasswordSecretArns", None),
    ];
    let listed: Vec<String> = functions.iter().map(|(_, p, _)| arn(p)).collect();
    for examples in [false, true] {
        for declared in [false, true] {
            let mut params: BTreeMap<&str, &str> = BTreeMap::new();
            params.insert("GitHubTokenSecretArns", &token);
            if declared {
                for ((_, param, _), a) in functions.iter().zip(&listed) {
                    params.insert(param, a);
                }
            }
            if examples {
                params.extend([
                    ("CreateExampleSecrets", "true"),
                    (
                        "GitHubAppKeySecretArn",
                        "arn:aws:secretsmanager:us-east-1:123456789012:secret:gh-app-*",
                    ),
                    ("ExampleGitHubAppId", "123456"),
                    ("ExampleGitHubInstallationId", "7890123"),
                    ("ExampleDbHost", "db.example.internal"),
                    ("ExampleDbPassword", "example-password"),
                ]);
            }
            for ((function, param, example), own) in functions.iter().zip(&listed) {
                let case = format!("{function}, examples {examples}, lists {declared}");
                let env = &resources[function]["Properties"]["Environment"]["Variables"];
                let value = match evaluate(&t, &params, &env[shared::rotated::ENV]) {
                    Some(serde_json::Value::String(s)) => s,
                    other => panic!("{case}: {other:?}"),
                };
                let got: BTreeSet<&str> = value.split(',').filter(|s| !s.is_empty()).collect();
                let mut want: BTreeSet<String> = BTreeSet::new();
                if declared {
                    want.insert(own.clone());
                }
                if examples && let Some(e) = example {
                    want.insert(format!("ref:{e}"));
                }
                if *function == "GitHubTokenFunction" {
                    want.insert(token.clone());
                }
                let want: BTreeSet<&str> = want.iter().map(String::as_str).collect();
                assert_eq!(got, want, "{case} ({param})");
                let rotated = shared::rotated::Rotated::parse(&value).unwrap();
                assert_eq!(rotated.check(own).is_ok(), declared, "{case}");
                for a in listed.iter().filter(|a| *a != own).chain([&other]) {
                    assert!(rotated.check(a).is_err(), "{case}: {a}");
                }
            }
        }
    }
    let tf = terraform();
    assert!(
        tf.contains("{ ROTATED_SECRET_ARNS = join(\",\", concat(\n        lookup(var.rotated_secret_arns, each.key, []),"),
        "main.tf: every function's environment takes its own list"
    );
    assert!(
        tf.contains("variable \"rotated_secret_arns\""),
        "variables.tf"
    );
}
