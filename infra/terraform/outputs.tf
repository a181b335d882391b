output "function_arns" {
  description = "Rotation function ARN by rotator."
  value       = { for k, f in aws_lambda_function.rotator : k => f.arn }
}

output "role_arns" {
  description = "Execution role ARN by rotator (for KMS key policies, permission reviews, or resource policies naming them)."
  value       = { for k, r in aws_iam_role.rotator : k => r.arn }
}

output "rotation_events_rule_arn" {
  description = "The rule that sends Secrets Manager's rotation failure events to alarm_topic_arn (null without a topic); the topic's policy must let events.amazonaws.com publish from it (aws:SourceArn)."
  value       = try(aws_cloudwatch_event_rule.rotation_events[0].arn, null)
}
