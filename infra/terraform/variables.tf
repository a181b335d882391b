variable "name_prefix" {
  description = "Prefix of every function, role and log group name."
  type        = string
  default     = "secret-rotation"
}

variable "package_dir" {
  description = "Where scripts/package put the zips: <dir>/<binary>/bootstrap.zip."
  type        = string
  default     = "../../target/lambda/arm64"
}

variable "architecture" {
  description = "arm64 or x86_64; must match the packages in package_dir."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "db_subnet_ids" {
  description = "Subnets for the DB rotator (the database's VPC). Empty runs it outside any VPC."
  type        = list(string)
  default     = []
}

variable "db_security_group_ids" {
  description = "Security groups for the DB rotator; they must reach the database and Secrets Manager."
  type        = list(string)
  default     = []
}

variable "db_master_secret_arns" {
  description = "Master secrets (ARNs, wildcards allowed) the DB rotator may read for alternating users."
  type        = list(string)
  default     = []
}

variable "db_ca_bundle_pem" {
  description = "PEM of the CAs of a database outside Amazon RDS, trusted beside the public roots instead of the RDS CA bundle compiled into the function. Empty trusts the RDS bundle and the public roots."
  type        = string
  default     = ""
}

variable "iam_user_path" {
  description = "IAM path of the users whose keys the IAM rotator may rotate."
  type        = string
  default     = "/rotated/"
}

variable "retire_previous" {
  description = "When every rotator retires the credential that became AWSPREVIOUS: next-rotation (it keeps working until the next rotation) or finish."
  type        = string
  default     = "next-rotation"
  validation {
    condition     = contains(["next-rotation", "finish"], var.retire_previous)
    error_message = "retire_previous must be next-rotation or finish."
  }
}

variable "old_key_action" {
  description = "With retire_previous = finish, what the IAM rotator does to the previous key in finishSecret: deactivate or delete."
  type        = string
  default     = "deactivate"
  validation {
    condition     = contains(["deactivate", "delete"], var.old_key_action)
    error_message = "old_key_action must be deactivate or delete."
  }
}

variable "kms_key_arns" {
  description = "Customer managed KMS keys of the rotated, master and GitHub App key secrets (RDS-managed master secrets often use their own key). The example secrets use the first. Empty when they all use the AWS managed key."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups, in days."
  type        = number
  default     = 365
}

variable "alarm_topic_arn" {
  description = "SNS topic told when a rotation step fails. Empty creates the alarms without actions."
  type        = string
  default     = ""
}

variable "rotation_schedule" {
  description = "ScheduleExpression of the example secret's rotation."
  type        = string
  default     = "rate(4 hours)"
}

variable "create_example_secrets" {
  description = "Create example secrets: one per rotator (the DB one only with example_db_host)."
  type        = bool
  default     = false
}

variable "example_db" {
  description = "With create_example_secrets and a host: the database the example DB secret rotates (single user)."
  type = object({
    engine   = string
    host     = string
    port     = number
    username = string
    password = string
  })
  default   = { engine = "postgres", host = "", port = 5432, username = "app", password = "" }
  sensitive = true
}

variable "github_api_url" {
  description = "GitHub API base URL; for GitHub Enterprise Server, https://HOST/api/v3."
  type        = string
  default     = "https://api.github.com"
}

variable "github_app_key_secret_arns" {
  description = "Secrets holding GitHub App private keys the GitHub rotator may read."
  type        = list(string)
  default     = []
}


variable "github_token_secret_arns" {
  description = "Installation-token secrets (kind app-installation-token, tagged as the README says) the GitHub rotator refreshes on a schedule of their own, besides the example's. Every token secret needs one: Secrets Manager rotates at most every 4 hours, tokens live 60 minutes."
  type        = list(string)
  default     = []
}

variable "github_token_rotation_minutes" {
  description = "How often EventBridge Scheduler refreshes each installation token (tokens live 60 minutes; consumers may cache one for at most 60 minus this, minus 5, minutes)."
  type        = number
  default     = 45
  validation {
    condition     = var.github_token_rotation_minutes >= 30 && var.github_token_rotation_minutes <= 50
    error_message = "github_token_rotation_minutes must be from 30 to 50."
  }
}
