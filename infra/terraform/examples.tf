resource "aws_secretsmanager_secret" "example" {
  count       = var.create_example_secrets ? 1 : 0
  name_prefix = "${var.name_prefix}-example-"
  description = "Example secret rotated by rotate-random-password."
  kms_key_id  = var.kms_key_arn == "" ? null : var.kms_key_arn
}

resource "aws_secretsmanager_secret_version" "example" {
  count         = var.create_example_secrets ? 1 : 0
  secret_id     = aws_secretsmanager_secret.example[0].id
  secret_string = jsonencode({ username = "app", password = "replaced-by-the-first-rotation" })
}

resource "aws_secretsmanager_secret_rotation" "example" {
  count               = var.create_example_secrets ? 1 : 0
  secret_id           = aws_secretsmanager_secret.example[0].id
  rotation_lambda_arn = aws_lambda_function.rotator["random-password"].arn
  rotation_rules {
    schedule_expression = var.rotation_schedule
  }
  depends_on = [aws_lambda_permission.secrets_manager, aws_secretsmanager_secret_version.example]
}
