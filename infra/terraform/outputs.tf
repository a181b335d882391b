output "function_arns" {
  description = "Rotation function ARN by rotator."
  value       = { for k, f in aws_lambda_function.rotator : k => f.arn }
}
