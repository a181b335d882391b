"""cfn-lint on the CloudFormation that the SAM transform makes of infra/template.yaml.

    .venv/bin/python scripts/lint_template.py            translate and lint every case below
    .venv/bin/python scripts/lint_template.py show CASE  print the translated template of CASE

cfn-lint alone checks the SAM resources as written, not the roles and policies the transform
adds: a managed policy ARN that SAM adds and the template lists again only exists after it, and
CloudFormation then refuses the stack. The translator is the code CloudFormation runs for the
transform; here it makes no AWS call: managed policy names come from the map bundled with it, and
a name missing from that map fails instead of asking IAM.
"""

import json
import logging
import os
import subprocess
import sys
import tempfile

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "infra", "template.yaml")

# Parameter values per case: the defaults, the DB rotator in a VPC, and every condition true. A
# new condition gets its true side in "everything".
VPC = {
    "DbSubnetIds": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
    "DbSecurityGroupIds": ["sg-0123456789abcdef0"],
}
CASES = {
    "defaults": {},
    "vpc": VPC,
    # One rotator alone, with its example: cfn-lint then proves that nothing left names a
    # function the switches removed.
    "db-only": {
        "DeployIamAccessKey": "false",
        "DeployGitHubToken": "false",
        "DeployRandomPassword": "false",
        "CreateExampleSecrets": "true",
        "ExampleDbHost": "db.example.internal",
        "ExampleDbPassword": "example-password",
    },
    "github-only": {
        "DeployDbPassword": "false",
        "DeployIamAccessKey": "false",
        "DeployRandomPassword": "false",
        "CreateExampleSecrets": "true",
        "GitHubAppKeySecretArn": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:gh-app-*"],
        "ExampleGitHubAppId": "123456",
        "ExampleGitHubInstallationId": "7890123",
    },
    # Token secrets declared without the example: the schedule refreshes those alone.
    "github-declared": {
        "GitHubTokenSecretArns": [
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ci-token-AbCdEf",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:deploy-token-GhIjKl",
        ],
    },
    "everything": {
        **VPC,
        "DbMasterSecretArn": [
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-*",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:masters/*",
        ],
        "DbCaBundlePem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "DbCaBundleLayerArn": "arn:aws:lambda:us-east-1:123456789012:layer:db-ca:1",
        "DbCaBundleFile": "/opt/ca/bundle.pem",
        "PasswordLength": "40",
        "ExcludeCharacters": "/@\"'\\",
        "PermissionsBoundaryArn": "arn:aws:iam::123456789012:policy/boundary",
        "RedisAdminSecretArn": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-admin-*"],
        "RedisCaBundlePem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "RedisSubnetIds": ["subnet-0123456789abcdef0"],
        "ElastiCacheUserArns": ["arn:aws:elasticache:us-east-1:123456789012:user:app-*"],
        "MemoryDbUserArns": ["arn:aws:memorydb:us-east-1:123456789012:user/app-*"],
        "RedisSecurityGroupIds": ["sg-0123456789abcdef0"],
        "RetirePrevious": "finish",
        "OldKeyAction": "delete",
        "GitHubAppKeySecretArn": [
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:gh-app-*",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:gh-other-app-*",
        ],
        "ExampleGitHubAppId": "123456",
        "ExampleGitHubInstallationId": "7890123",
        "GitHubTokenSecretArns": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:ci-token-AbCdEf"],
        "DbPasswordSecretArns": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-db-AbCdEf"],
        "IamAccessKeySecretArns": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:ci-deployer-AbCdEf"],
        "GitHubDeployKeySecretArns": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:deploy-key-AbCdEf"],
        "RandomPasswordSecretArns": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:app-token-AbCdEf"],
        "RedisPasswordSecretArns": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:cache-user-AbCdEf"],
        "KmsKeyArns": ["arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"],
        "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:rotation-alarms",
        "CreateExampleSecrets": "true",
        "ExampleDbHost": "db.example.internal",
        "ExampleDbPassword": "example-password",
    },
}


class OfflinePolicies:
    """Stands in for the loader that lists AWS managed policies through IAM."""

    def load(self):
        sys.exit("lint_template: a managed policy name is not in the translator's bundled map")


def translate(params):
    with open(TEMPLATE, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    # The transform wants packaged code: `sam package` puts an S3 URI in place of each directory.
    for name, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in props:
            props["CodeUri"] = f"s3://packaged/{name}.zip"
    # The translator reads the region (hence the partition of its ARNs) from a boto3 session,
    # which takes it from the environment without a call.
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    # Its metrics go to a no-op publisher, which warns on exit that they were never published.
    logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)
    return transform(template, dict(params), OfflinePolicies())


def lint():
    cfn_lint = os.path.join(os.path.dirname(sys.executable), "cfn-lint")
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for case, params in CASES.items():
            out = os.path.join(tmp, f"{case}.json")
            with open(out, "w", encoding="utf-8") as f:
                json.dump(translate(params), f, indent=1)
            # cfn-lint takes list parameters only from a file, as lists.
            args = [cfn_lint, out]
            if params:
                values = os.path.join(tmp, f"{case}.parameters.json")
                with open(values, "w", encoding="utf-8") as f:
                    json.dump([{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()], f)
                args += ["--parameter-files", values]
            found = subprocess.run(args, capture_output=True, text=True)
            if found.returncode != 0:
                failed.append(case)
                print(f"lint_template: translated template, case {case}:\n{found.stdout}{found.stderr}")
    if failed:
        sys.exit(f"lint_template: cfn-lint found problems in the translated template ({', '.join(failed)})")


def main():
    args = sys.argv[1:]
    if not args:
        lint()
    elif len(args) == 2 and args[0] == "show" and args[1] in CASES:
        json.dump(translate(CASES[args[1]]), sys.stdout, indent=1, sort_keys=True)
        print()
    else:
        sys.exit(f"usage: lint_template.py [show {'|'.join(CASES)}]")


if __name__ == "__main__":
    main()
