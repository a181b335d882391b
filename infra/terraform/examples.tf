# One example secret per rotator, each with its rotation schedule.

resource "aws_iam_user" "example" {
  #checkov:skip=CKV_AWS_273:The example shows what this rotator is for: a workload that must use an IAM user's access key (e.g. outside AWS). It has no policies.
  count = local.iam_example ? 1 : 0
  name  = "${var.name_prefix}-example"
  path  = var.iam_user_path
  # The rotator makes this user's later keys, which Terraform does not know: without this,
  # destroy fails with DeleteConflict.
  force_destroy = true
}

resource "aws_iam_access_key" "example" {
  count = local.iam_example ? 1 : 0
  user  = aws_iam_user.example[0].name
}

locals {
  # An example only for a rotator this module deploys.
  iam_example = var.create_example_secrets && local.deploys["iam-access-key"]
  examples = merge(
    var.create_example_secrets && local.deploys["random-password"] ? {
      "random-password" = jsonencode({ username = "app", password = "replaced-by-the-first-rotation" })
    } : {},
    local.iam_example ? {
      "iam-access-key" = jsonencode({
        UserName        = aws_iam_user.example[0].name
        AccessKeyId     = aws_iam_access_key.example[0].id
        SecretAccessKey = aws_iam_access_key.example[0].secret
      })
    } : {},
    var.create_example_secrets && local.deploys["db-password"] && var.example_db.host != "" ? { "db-password" = jsonencode(var.example_db) } : {},
    var.create_example_secrets && local.deploys["github-token"] && length(var.github_app_key_secret_arns) > 0 && var.example_github != null ? {
      "github-token" = jsonencode({
        kind                   = "app-installation-token"
        app_id                 = var.example_github.app_id
        installation_id        = var.example_github.installation_id
        private_key_secret_arn = var.github_app_key_secret_arns[0]
      })
    } : {},
  )
}

# Pins a writer of the value cannot change (TagResource is a right of its own): what each
# rotator may mint for the secret. See docs/rotators/iam-access-key.md and github-token.md.
locals {
  example_tags = {
    "iam-access-key" = {
      "iam:user-name" = try(aws_iam_user.example[0].name, "")
    }
    "github-token" = {
      "github:app-id"                 = try(tostring(var.example_github.app_id), "")
      "github:installation-id"        = try(tostring(var.example_github.installation_id), "")
      "github:private-key-secret-arn" = length(var.github_app_key_secret_arns) > 0 ? var.github_app_key_secret_arns[0] : ""
      "github:permissions"            = "contents=read metadata=read"
    }
  }
}

resource "aws_secretsmanager_secret" "example" {
  for_each    = nonsensitive(toset(keys(local.examples)))
  name_prefix = "${var.name_prefix}-example-${each.key}-"
  description = "Example secret rotated by ${local.rotators[each.key].binary}."
  kms_key_id  = length(var.kms_key_arns) == 0 ? null : var.kms_key_arns[0]
  tags        = lookup(local.example_tags, each.key, {})
}

resource "aws_secretsmanager_secret_version" "example" {
  for_each      = nonsensitive(toset(keys(local.examples)))
  secret_id     = aws_secretsmanager_secret.example[each.key].id
  secret_string = local.examples[each.key]
  # The initial value only: rotation writes new versions and moves AWSCURRENT off this one, and a
  # later plan must neither put the old value back nor move the label back to it.
  lifecycle {
    ignore_changes = [secret_string, version_stages]
  }
}

resource "aws_secretsmanager_secret_rotation" "example" {
  for_each            = nonsensitive(toset(keys(local.examples)))
  secret_id           = aws_secretsmanager_secret.example[each.key].id
  rotation_lambda_arn = aws_lambda_function.rotator[each.key].arn
  rotation_rules {
    schedule_expression = var.rotation_schedule
  }
  depends_on = [aws_lambda_permission.secrets_manager, aws_secretsmanager_secret_version.example]
}

# Installation tokens live one hour; Secrets Manager's own schedule runs at most every 4 hours, so
# EventBridge Scheduler invokes the function's refresh for every token secret (the example's and
# github_token_secret_arns). Not RotateSecret: a rotation left unfinished by one failure makes
# Secrets Manager refuse every later one, while a refresh drops it (README). One schedule for them
# all, as in the SAM template: one invocation refreshes each secret in its own share of the time,
# each failure on its own, and a Lambda retry of the event leaves alone the secrets refreshed
# since its ScheduledTime.
locals {
  # None without the GitHub rotator: the schedule invokes its function. The function's
  # GITHUB_TOKEN_SECRET_ARNS is the same list (main.tf), so its pre-flight fails a token secret
  # that nothing refreshes.
  github_token_secret_arns = concat(
    contains(keys(local.examples), "github-token") ? [aws_secretsmanager_secret.example["github-token"].arn] : [],
    local.deploys["github-token"] ? var.github_token_secret_arns : [],
  )
  github_refresh = length(local.github_token_secret_arns) > 0
}

resource "aws_iam_role" "github_scheduler" {
  count                = local.github_refresh ? 1 : 0
  name                 = "${var.name_prefix}-github-scheduler"
  permissions_boundary = var.permissions_boundary_arn == "" ? null : var.permissions_boundary_arn
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "scheduler.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account } }
    }]
  })
  inline_policy {
    name = "refresh-the-token-secrets"
    policy = jsonencode({
      Version = "2012-10-17"
      Statement = [
        { Effect = "Allow", Action = "lambda:InvokeFunction", Resource = aws_lambda_function.rotator["github-token"].arn },
      ]
    })
  }
}

resource "aws_scheduler_schedule" "github_token" {
  #checkov:skip=CKV_AWS_297:The schedule's input is the secrets' ids only, nothing confidential; a customer key would add a key policy for no gain.
  count               = local.github_refresh ? 1 : 0
  name                = "${var.name_prefix}-github-token-refresh"
  schedule_expression = "rate(${var.github_token_rotation_minutes} minutes)"
  flexible_time_window {
    mode = "OFF"
  }
  target {
    arn      = aws_lambda_function.rotator["github-token"].arn
    role_arn = aws_iam_role.github_scheduler[0].arn
    input    = jsonencode({ Step = "refresh", SecretIds = local.github_token_secret_arns, ScheduledTime = "<aws.scheduler.scheduled-time>" })
  }
}

# A failed refresh is a StepFailed (main.tf). No successful refresh for an hour means the tokens in
# AWSCURRENT are expired or about to be.
resource "aws_cloudwatch_metric_alarm" "github_token_stale" {
  count               = local.github_refresh ? 1 : 0
  alarm_name          = "${var.name_prefix}-github-token-stale"
  alarm_description   = "No GitHub installation token was refreshed in the last hour; consumers may hold expired tokens. See the function's \"refresh failed\" log lines and its schedules."
  namespace           = "SecretsRotation"
  metric_name         = "StepSucceeded"
  dimensions          = { Rotator = "github-token", Step = "refresh" }
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = var.alarm_topic_arn == "" ? [] : [var.alarm_topic_arn]
}
