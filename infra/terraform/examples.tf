# One example secret per rotator, each with its rotation schedule.

resource "aws_iam_user" "example" {
  #checkov:skip=CKV_AWS_273:The example shows what this rotator is for: a workload that must use an IAM user's access key (e.g. outside AWS). It has no policies.
  count = var.create_example_secrets ? 1 : 0
  name  = "${var.name_prefix}-example"
  path  = var.iam_user_path
}

resource "aws_iam_access_key" "example" {
  count = var.create_example_secrets ? 1 : 0
  user  = aws_iam_user.example[0].name
}

locals {
  examples = merge(
    var.create_example_secrets ? {
      "random-password" = jsonencode({ username = "app", password = "replaced-by-the-first-rotation" })
      "iam-access-key" = jsonencode({
        UserName        = aws_iam_user.example[0].name
        AccessKeyId     = aws_iam_access_key.example[0].id
        SecretAccessKey = aws_iam_access_key.example[0].secret
      })
    } : {},
    var.create_example_secrets && var.example_db.host != "" ? { "db-password" = jsonencode(var.example_db) } : {},
  )
}

resource "aws_secretsmanager_secret" "example" {
  for_each    = nonsensitive(toset(keys(local.examples)))
  name_prefix = "${var.name_prefix}-example-${each.key}-"
  description = "Example secret rotated by ${local.rotators[each.key].binary}."
  kms_key_id  = var.kms_key_arn == "" ? null : var.kms_key_arn
}

resource "aws_secretsmanager_secret_version" "example" {
  for_each      = nonsensitive(toset(keys(local.examples)))
  secret_id     = aws_secretsmanager_secret.example[each.key].id
  secret_string = local.examples[each.key]
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
