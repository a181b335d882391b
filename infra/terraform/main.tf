data "aws_caller_identity" "this" {}
data "aws_region" "this" {}
data "aws_partition" "this" {}

locals {
  account   = data.aws_caller_identity.this.account_id
  region    = data.aws_region.this.name
  partition = data.aws_partition.this.partition
  in_vpc    = length(var.db_subnet_ids) > 0
  # Each rotator that reaches servers in a VPC: its subnets and security groups.
  vpc = {
    "db-password"    = { subnets = var.db_subnet_ids, security_groups = var.db_security_group_ids }
    "redis-password" = { subnets = var.redis_subnet_ids, security_groups = var.redis_security_group_ids }
  }

  # One entry per rotator binary; `statements` are what its target needs beyond its own secrets.
  all_rotators = {
    "db-password" = {
      binary      = "rotate-db-password"
      description = "Rotates PostgreSQL and MySQL/MariaDB passwords (single or alternating users)."
      env = merge(
        { DB_CONNECT_TIMEOUT_SECONDS = "5", DB_STATEMENT_TIMEOUT_SECONDS = "5" },
        var.db_ca_bundle_pem == "" ? {} : { DB_CA_BUNDLE_PEM = var.db_ca_bundle_pem },
        var.db_ca_bundle_file == "" ? {} : { DB_CA_BUNDLE_FILE = var.db_ca_bundle_file },
        local.password_env,
        local.retire_env,
        # The master secrets a secret's `masterarn` may name: the same ARNs the role may read.
        length(var.db_master_secret_arns) == 0 ? {} : { DB_MASTER_SECRET_ARNS = join(",", var.db_master_secret_arns) },
      )
      statements = length(var.db_master_secret_arns) == 0 ? [] : [
        {
          Sid    = "ReadMasterSecrets"
          Effect = "Allow"
          # DescribeSecret: the tag of an RDS-managed master secret names its database.
          Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
          Resource = var.db_master_secret_arns
        },
        {
          Sid    = "FindRdsManagedMasterDatabase"
          Effect = "Allow"
          Action = ["rds:DescribeDBInstances", "rds:DescribeDBClusters"]
          Resource = [
            "arn:${local.partition}:rds:${local.region}:${local.account}:db:*",
            "arn:${local.partition}:rds:${local.region}:${local.account}:cluster:*",
          ]
        },
      ]
    }
    "iam-access-key" = {
      binary      = "rotate-iam-access-key"
      description = "Rotates the access key of one IAM user per secret."
      env         = merge(local.retire_env, var.retire_previous == "finish" ? { OLD_KEY_ACTION = var.old_key_action } : {})
      statements = [{
        Sid      = "KeysOfUsersUnderThePath"
        Effect   = "Allow"
        Action   = ["iam:ListAccessKeys", "iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:GetUser", "iam:GetAccessKeyLastUsed"]
        Resource = ["arn:${local.partition}:iam::${local.account}:user${var.iam_user_path}*"]
      }]
    }
    "github-token" = {
      binary      = "rotate-github-token"
      description = "Rotates GitHub App installation tokens and repository deploy keys."
      env         = merge(local.retire_env, { GITHUB_API_URL = var.github_api_url })
      statements = length(var.github_app_key_secret_arns) == 0 ? [] : [{
        Sid      = "ReadAppPrivateKeys"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = var.github_app_key_secret_arns
      }]
    }
    "redis-password" = {
      binary      = "rotate-redis-password"
      description = "Rotates Redis 6+ and Valkey ACL user passwords with zero downtime."
      env = merge(
        { REDIS_TIMEOUT_SECONDS = "5" },
        local.retire_env,
        var.redis_ca_bundle_pem == "" ? {} : { REDIS_CA_BUNDLE_PEM = var.redis_ca_bundle_pem },
        local.password_env,
        # The administrator secrets a secret's `masterarn` may name: the same ARNs the role may read.
        length(var.redis_admin_secret_arns) == 0 ? {} : { REDIS_ADMIN_SECRET_ARNS = join(",", var.redis_admin_secret_arns) },
        # The ElastiCache users a secret's `user_arn` may name: the same ARNs the role may change.
        length(var.elasticache_user_arns) == 0 ? {} : { ELASTICACHE_USER_ARNS = join(",", var.elasticache_user_arns) },
        # The same for MemoryDB users.
        length(var.memorydb_user_arns) == 0 ? {} : { MEMORYDB_USER_ARNS = join(",", var.memorydb_user_arns) },
        # An opt-in to AWS's template behaviour (README, KEEP_UNPROVEN_CURRENT_PASSWORD).
        var.redis_keep_unproven_current_password ? { KEEP_UNPROVEN_CURRENT_PASSWORD = "true" } : {},
      )
      statements = concat(
        length(var.redis_admin_secret_arns) == 0 ? [] : [{
          Sid      = "ReadAdminSecrets"
          Effect   = "Allow"
          Action   = ["secretsmanager:GetSecretValue"]
          Resource = var.redis_admin_secret_arns
        }],
        length(var.elasticache_user_arns) == 0 ? [] : [{
          Sid      = "ChangeNamedElastiCacheUsers"
          Effect   = "Allow"
          Action   = ["elasticache:ModifyUser", "elasticache:DescribeUsers"]
          Resource = var.elasticache_user_arns
        }],
        length(var.memorydb_user_arns) == 0 ? [] : [{
          Sid      = "ChangeNamedMemoryDbUsers"
          Effect   = "Allow"
          Action   = ["memorydb:UpdateUser", "memorydb:DescribeUsers"]
          Resource = var.memorydb_user_arns
        }],
      )
    }
    "random-password" = {
      binary      = "rotate-random-password"
      description = "Rotates a generated password field that applications read."
      env         = local.password_env
      statements  = []
    }
  }
}

# The generated passwords' settings, for the rotators that generate passwords.
locals {
  password_env = merge(
    var.password_length == null ? {} : { PASSWORD_LENGTH = tostring(var.password_length) },
    var.exclude_characters == null ? {} : { EXCLUDE_CHARACTERS = var.exclude_characters },
  )
  # The previous credential's minimum age, for the rotators that honour it (they ask
  # Versions::may_retire_previous before retiring).
  retire_env = { RETIRE_PREVIOUS_MIN_AGE_SECONDS = tostring(var.retire_previous_min_age_seconds) }
}

# Deploy only what you need (var.rotators).
locals {
  rotators = { for k, v in local.all_rotators : k => v if var.rotators == null || contains(coalesce(var.rotators, []), k) }
  deploys  = { for k in keys(local.all_rotators) : k => contains(keys(local.rotators), k) }
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rotator" {
  for_each             = local.rotators
  name                 = "${var.name_prefix}-${each.key}"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  permissions_boundary = var.permissions_boundary_arn == "" ? null : var.permissions_boundary_arn
  lifecycle {
    precondition {
      condition     = var.rotators == null || length(setsubtract(coalesce(var.rotators, []), keys(local.all_rotators))) == 0
      error_message = "rotators names a rotator this module does not have; it has ${join(", ", keys(local.all_rotators))}."
    }
  }
}

resource "aws_iam_role_policy" "rotator" {
  for_each = local.rotators
  name     = "rotation"
  role     = aws_iam_role.rotator[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          # Only the secrets whose rotation function is this one.
          Sid      = "RotateOnlyOwnSecrets"
          Effect   = "Allow"
          Action   = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage", "secretsmanager:ListSecretVersionIds"]
          Resource = "*"
          Condition = {
            StringEquals = {
              "secretsmanager:resource/AllowRotationLambdaArn" = "arn:${local.partition}:lambda:${local.region}:${local.account}:function:${var.name_prefix}-${each.key}"
            }
          }
        },
        {
          # The pre-flight before a secret is switched to this function (README, "Before you turn
          # rotation on"): read-only, on secrets whose tag rotation:preflight names this function.
          Sid       = "PreflightReadsSecretsTaggedForIt"
          Effect    = "Allow"
          Action    = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
          Resource  = "*"
          Condition = { StringEquals = { "aws:ResourceTag/rotation:preflight" = "${var.name_prefix}-${each.key}" } }
        },
        {
          Sid      = "OwnLogs"
          Effect   = "Allow"
          Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
          Resource = "${aws_cloudwatch_log_group.rotator[each.key].arn}:*"
        },
        {
          # The pre-flight check simulates the write calls against this role's own policies
          # (GetRole: the role's ARN with its path, which the session's ARN drops).
          Sid      = "PreflightSimulatesItsOwnRole"
          Effect   = "Allow"
          Action   = ["iam:SimulatePrincipalPolicy", "iam:GetRole"]
          Resource = aws_iam_role.rotator[each.key].arn
        },
      ],
      length(var.kms_key_arns) == 0 ? [] : [{
        Sid       = "SecretsKey"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = var.kms_key_arns
        Condition = { StringEquals = { "kms:ViaService" = "secretsmanager.${local.region}.amazonaws.com" } }
      }],
      each.value.statements,
    )
  })
}

resource "aws_iam_role_policy_attachment" "db_vpc" {
  count      = local.in_vpc && local.deploys["db-password"] ? 1 : 0
  role       = aws_iam_role.rotator["db-password"].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_iam_role_policy_attachment" "redis_vpc" {
  count      = length(var.redis_subnet_ids) > 0 && local.deploys["redis-password"] ? 1 : 0
  role       = aws_iam_role.rotator["redis-password"].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_cloudwatch_log_group" "rotator" {
  #checkov:skip=CKV_AWS_158:The logs never carry secret values (the test suite scans every log line for them); encrypting with a customer key adds a key policy to manage for no confidentiality gain.
  for_each          = local.rotators
  name              = "/aws/lambda/${var.name_prefix}-${each.key}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "rotator" {
  #checkov:skip=CKV_AWS_116:Secrets Manager invokes rotation functions synchronously; a dead-letter queue only receives failed asynchronous invocations, so it would never fire. Failures alarm on the StepFailed metric instead.
  #checkov:skip=CKV_AWS_115:Rotations are rare and Secrets Manager runs one at a time per secret; reserving concurrency would take capacity from the account's shared pool for no protection.
  #checkov:skip=CKV_AWS_173:The environment holds configuration only (timeouts, log level, key action), never a secret; secrets are read from Secrets Manager at run time.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile owned by the deploying organisation; teams that use one add it to the function themselves.
  #checkov:skip=CKV_AWS_50:The functions emit their own JSON logs and EMF metrics per step; X-Ray adds cost and a dependency without adding to that.
  #checkov:skip=CKV_AWS_117:This rotator calls only AWS APIs; a VPC would add NAT or endpoint cost and cold-start time without isolating anything. The DB rotator takes VPC settings as parameters.
  for_each         = local.rotators
  function_name    = "${var.name_prefix}-${each.key}"
  description      = each.value.description
  role             = aws_iam_role.rotator[each.key].arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${var.package_dir}/${each.value.binary}/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.package_dir}/${each.value.binary}/bootstrap.zip")
  memory_size      = 128
  timeout          = 60
  # A CA bundle too large for the environment (4 KB): a layer, read from DB_CA_BUNDLE_FILE.
  layers = each.key == "db-password" && var.db_ca_bundle_layer_arn != "" ? [var.db_ca_bundle_layer_arn] : []

  environment {
    variables = merge(
      { LOG_LEVEL = "info", METRICS_NAMESPACE = "SecretsRotation", RETIRE_PREVIOUS = var.retire_previous },
      each.value.env,
      # The token secrets the refresh schedule names (examples.tf); here, not in local.all_rotators,
      # because the example secret's description reads that local.
      each.key == "github-token" && local.github_refresh ? { GITHUB_TOKEN_SECRET_ARNS = join(",", local.github_token_secret_arns) } : {},
      # The secrets this function rotates (its own list); it refuses any other pointed at it (docs/protocol.md).
      { ROTATED_SECRET_ARNS = join(",", concat(
        lookup(var.rotated_secret_arns, each.key, []),
        contains(keys(local.examples), each.key) ? [aws_secretsmanager_secret.example[each.key].arn] : [],
        each.key == "github-token" ? local.github_token_secret_arns : [],
      )) },
    )
  }

  dynamic "vpc_config" {
    for_each = length(try(local.vpc[each.key].subnets, [])) > 0 ? [local.vpc[each.key]] : []
    content {
      subnet_ids         = vpc_config.value.subnets
      security_group_ids = vpc_config.value.security_groups
    }
  }

  depends_on = [aws_cloudwatch_log_group.rotator, aws_iam_role_policy.rotator]
}

resource "aws_lambda_permission" "secrets_manager" {
  for_each       = local.rotators
  statement_id   = "SecretsManagerRotation"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.rotator[each.key].function_name
  principal      = "secretsmanager.amazonaws.com"
  source_account = local.account
}

resource "aws_cloudwatch_metric_alarm" "step_failed" {
  for_each            = local.rotators
  alarm_name          = "${var.name_prefix}-${each.key}-step-failed"
  alarm_description   = "A step of ${each.value.binary} failed; see the function's \"step failed\" log lines."
  namespace           = "SecretsRotation"
  metric_name         = "StepFailed"
  dimensions          = { Rotator = each.key }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_topic_arn == "" ? [] : [var.alarm_topic_arn]
}
