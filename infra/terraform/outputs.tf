output "function_arns" {
  description = "Rotation function ARN by rotator."
  value       = { for k, f in aws_lambda_function.rotator : k => f.arn }
}

output "role_arns" {
  description = "Execution role ARN by rotator (for KMS key policies, permission reviews, or resource policies naming them)."
  value       = { for k, r in aws_iam_role.rotator : k => r.arn }
}
