# What the StepFailed alarm (main.tf) cannot show. It counts only what a living function reports;
# Lambda's own metrics also count an invocation that ended first (a timeout, an out-of-memory kill,
# a failed start such as a bad environment variable) and one Lambda refused (throttling).

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each            = local.rotators
  alarm_name          = "${var.name_prefix}-${each.key}-errors"
  alarm_description   = "An invocation of ${each.value.binary} failed (AWS/Lambda Errors). With no \"step failed\" line in its log group, it ended before it could report (a timeout, an out-of-memory kill, a failed start); see the REPORT and INIT lines there."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.rotator[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_topic_arn == "" ? [] : [var.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "lambda_throttles" {
  for_each            = local.rotators
  alarm_name          = "${var.name_prefix}-${each.key}-throttles"
  alarm_description   = "Lambda refused an invocation of ${each.value.binary} for lack of concurrency (AWS/Lambda Throttles); the rotation failed with nothing in the function's logs."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = aws_lambda_function.rotator[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_topic_arn == "" ? [] : [var.alarm_topic_arn]
}

# What no function alarm sees: Secrets Manager could not invoke the function or use the secret's
# key, a rotation was abandoned (a new version written over it), or the test of a rotation turned
# on without rotating at once failed. These events name the secret, not the function: one rule for
# the account and region, while any rotator is deployed. The topic's policy must let
# events.amazonaws.com publish (README); output rotation_events_rule_arn is its aws:SourceArn.
resource "aws_cloudwatch_event_rule" "rotation_events" {
  count       = var.alarm_topic_arn != "" && length(local.rotators) > 0 ? 1 : 0
  name        = "${var.name_prefix}-rotation-events"
  description = "Secrets Manager reported a rotation that failed or was abandoned (any secret of this account and region)."
  event_pattern = jsonencode({
    source        = ["aws.secretsmanager"]
    "detail-type" = ["AWS Service Event via CloudTrail"]
    detail = {
      eventSource = ["secretsmanager.amazonaws.com"]
      eventName   = ["RotationFailed", "RotationAbandoned", "TestRotationFailed"]
    }
  })
}

resource "aws_cloudwatch_event_target" "rotation_events" {
  count     = length(aws_cloudwatch_event_rule.rotation_events)
  rule      = aws_cloudwatch_event_rule.rotation_events[0].name
  target_id = "alarm-topic"
  arn       = var.alarm_topic_arn
}
