variable "name_prefix" {
  description = "Prefix of every function, role and log group name."
  type        = string
  default     = "secret-rotation"
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.name_prefix))
    error_message = "name_prefix takes up to 40 letters, digits, - and _ (function and role names add a suffix, up to 64 in all)."
  }
}

variable "rotators" {
  description = "The rotators to deploy (db-password, iam-access-key, github-token, random-password); null deploys them all."
  type        = set(string)
  default     = null
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
  validation {
    condition     = alltrue([for a in var.db_master_secret_arns : can(regex("^arn:[a-z-]+:secretsmanager:", a))])
    error_message = "db_master_secret_arns takes Secrets Manager secret ARNs."
  }
}

variable "db_ca_bundle_pem" {
  description = "PEM of the CAs of a database outside Amazon RDS, trusted beside the public roots instead of the RDS CA bundle compiled into the function. Empty trusts the RDS bundle and the public roots."
  type        = string
  default     = ""
  validation {
    condition     = var.db_ca_bundle_pem == "" || can(regex("-----BEGIN CERTIFICATE-----", var.db_ca_bundle_pem))
    error_message = "db_ca_bundle_pem must be PEM certificates (or empty)."
  }
}

variable "redis_admin_secret_arns" {
  description = "Redis/Valkey administrator secrets (ARNs, wildcards allowed) a secret's masterarn may name; the Redis rotator reads only these. Empty: every Redis rotation is refused."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.redis_admin_secret_arns : can(regex("^arn:[a-z-]+:secretsmanager:", a))])
    error_message = "redis_admin_secret_arns takes Secrets Manager secret ARNs."
  }
}

variable "redis_ca_bundle_pem" {
  description = "PEM of the CAs of Redis/Valkey servers with a private CA, trusted beside the public roots. Empty trusts the public roots only."
  type        = string
  default     = ""
}

variable "elasticache_user_arns" {
  description = "ElastiCache users (ARNs, wildcards allowed) whose passwords the Redis rotator may change (elasticache:ModifyUser and DescribeUsers on these only). Empty allows none."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.elasticache_user_arns : can(regex("^arn:[a-z-]+:elasticache:[^:]*:[^:]*:user:", a))])
    error_message = "elasticache_user_arns takes ElastiCache user ARNs (...:elasticache:REGION:ACCOUNT:user:ID)."
  }
}

variable "redis_keep_unproven_current_password" {
  description = "KEEP_UNPROVEN_CURRENT_PASSWORD: true lets the Redis rotator rotate an ElastiCache or MemoryDB user secret whose tags pin no redis:endpoint, keeping its current password beside the new one unproven, as AWS's ElastiCache template does (a writer of such a secret could plant a password the user keeps until the next rotation). Leave false and tag the endpoint where the function can reach it."
  type        = bool
  default     = false
}

variable "memorydb_user_arns" {
  description = "MemoryDB users (ARNs, wildcards allowed) whose passwords the Redis rotator may change (memorydb:UpdateUser and DescribeUsers on these only). Empty allows none."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.memorydb_user_arns : can(regex("^arn:[a-z-]+:memorydb:[^:]*:[^:]*:user/", a))])
    error_message = "memorydb_user_arns takes MemoryDB user ARNs (...:memorydb:REGION:ACCOUNT:user/NAME)."
  }
}

variable "redis_subnet_ids" {
  description = "Subnets for the Redis rotator (the servers' VPC). Empty runs it outside any VPC."
  type        = list(string)
  default     = []
}

variable "redis_security_group_ids" {
  description = "Security groups for the Redis rotator; they must reach the Redis port and Secrets Manager."
  type        = list(string)
  default     = []
}

variable "db_ca_bundle_file" {
  description = "Absolute file name of the CA bundle of a database outside Amazon RDS in the function's file system (e.g. /opt/ca/bundle.pem from db_ca_bundle_layer_arn), for bundles larger than Lambda's 4 KB of environment; set this or db_ca_bundle_pem. Empty reads no file."
  type        = string
  default     = ""
  validation {
    condition     = var.db_ca_bundle_file == "" || startswith(var.db_ca_bundle_file, "/")
    error_message = "db_ca_bundle_file must be an absolute path (or empty)."
  }
}

variable "db_ca_bundle_layer_arn" {
  description = "A Lambda layer version holding that CA bundle (layers are unpacked under /opt). Empty adds no layer."
  type        = string
  default     = ""
  validation {
    condition     = var.db_ca_bundle_layer_arn == "" || can(regex("^arn:[a-z-]+:lambda:[a-z0-9-]+:[0-9]{12}:layer:.+:[0-9]+$", var.db_ca_bundle_layer_arn))
    error_message = "db_ca_bundle_layer_arn must be a layer version ARN (or empty)."
  }
}

variable "password_length" {
  description = "Length of the passwords the DB, Redis and random-password rotators generate (PASSWORD_LENGTH). Null keeps the default, 32."
  type        = number
  default     = null
  validation {
    condition     = var.password_length == null || try(var.password_length >= 1 && var.password_length <= 4096 && floor(var.password_length) == var.password_length, false)
    error_message = "password_length must be a whole number from 1 to 4096."
  }
}

variable "exclude_characters" {
  description = "Characters generated passwords never contain (EXCLUDE_CHARACTERS; the excludeCharacters of AWS's SAR apps). Null keeps the default, which leaves out those that break URLs, DSNs and shells."
  type        = string
  default     = null
}

variable "permissions_boundary_arn" {
  description = "A managed policy set as the permissions boundary of every role the module creates. Empty sets none."
  type        = string
  default     = ""
  validation {
    condition     = var.permissions_boundary_arn == "" || can(regex("^arn:[a-z-]+:iam::[0-9]{12}:policy/.+", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be an IAM policy ARN (or empty)."
  }
}

variable "iam_user_path" {
  description = "IAM path of the users whose keys the IAM rotator may rotate."
  type        = string
  default     = "/rotated/"
  validation {
    condition     = can(regex("^/([!-~]*/)?$", var.iam_user_path))
    error_message = "iam_user_path must start and end with / (e.g. /rotated/)."
  }
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

variable "retire_previous_min_age_seconds" {
  description = "With retire_previous = next-rotation, the least time in seconds the previous credential keeps working after it stopped being current, even when rotations come back to back (RETIRE_PREVIOUS_MIN_AGE_SECONDS of the DB, IAM, GitHub and Redis rotators). 0 turns it off."
  type        = number
  default     = 7200
  validation {
    condition     = var.retire_previous_min_age_seconds >= 0 && floor(var.retire_previous_min_age_seconds) == var.retire_previous_min_age_seconds
    error_message = "retire_previous_min_age_seconds must be a whole number of seconds, 0 or more."
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
  validation {
    condition     = alltrue([for a in var.kms_key_arns : can(regex("^arn:[a-z-]+:kms:", a))])
    error_message = "kms_key_arns takes KMS key ARNs."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups, in days."
  type        = number
  default     = 365
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 180, 365, 400, 545, 731, 1827, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs offers (1, 3, 5, 7, 14, 30, 60, 90, 180, 365, 400, 545, 731, 1827, 3653)."
  }
}

variable "alarm_topic_arn" {
  description = "SNS topic told when a rotation fails (the functions' StepFailed, Errors and Throttles alarms, and Secrets Manager's RotationFailed, RotationAbandoned and TestRotationFailed events; its policy must let events.amazonaws.com publish). Empty creates the alarms without actions and no event rule."
  type        = string
  default     = ""
  validation {
    condition     = var.alarm_topic_arn == "" || can(regex("^arn:[a-z-]+:sns:", var.alarm_topic_arn))
    error_message = "alarm_topic_arn must be an SNS topic ARN (or empty)."
  }
}

variable "rotation_schedule" {
  description = "ScheduleExpression of the example secret's rotation."
  type        = string
  default     = "rate(4 hours)"
  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.rotation_schedule))
    error_message = "rotation_schedule must be rate(...) or cron(...)."
  }
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
  validation {
    condition     = contains(["postgres", "mysql", "mariadb"], var.example_db.engine) && (var.example_db.host == "" || var.example_db.password != "")
    error_message = "example_db.engine must be postgres, mysql or mariadb, and a host needs the user's current password."
  }
}

variable "example_github" {
  description = "With create_example_secrets and github_app_key_secret_arns: your GitHub App's ID and the installation's ID for the example token secret. Null skips that example."
  type = object({
    app_id          = number
    installation_id = number
  })
  default = null
  validation {
    condition     = var.example_github == null || try(var.example_github.app_id > 0 && var.example_github.installation_id > 0, false)
    error_message = "example_github needs positive app_id and installation_id."
  }
}

variable "github_api_url" {
  description = "GitHub API base URL; for GitHub Enterprise Server, https://HOST/api/v3."
  type        = string
  default     = "https://api.github.com"
  validation {
    condition     = can(regex("^https://", var.github_api_url))
    error_message = "github_api_url must be an https:// URL."
  }
}

variable "github_app_key_secret_arns" {
  description = "Secrets holding GitHub App private keys the GitHub rotator may read."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.github_app_key_secret_arns : can(regex("^arn:[a-z-]+:secretsmanager:", a))])
    error_message = "github_app_key_secret_arns takes Secrets Manager secret ARNs."
  }
}


variable "rotated_secret_arns" {
  description = "The secrets each rotator rotates, by rotator (keys as in var.rotators): full ARNs with their six-character suffix, no wildcards (validated by shape: a suffix-less ARN whose name happens to end in `-` and six characters passes, and then names no secret). Each function rotates only its own list, its example secret and (GitHub) github_token_secret_arns, and refuses any other secret whose rotation names it, before any call."
  type        = map(list(string))
  default     = {}
  validation {
    condition     = alltrue([for a in flatten(values(var.rotated_secret_arns)) : can(regex("^arn:[a-z-]+:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[^*,]+-[A-Za-z0-9]{6}$", a))])
    error_message = "rotated_secret_arns maps a rotator's name (as in var.rotators) to full Secrets Manager secret ARNs (random suffix included), without wildcards or commas."
  }
}

variable "github_token_secret_arns" {
  description = "Full ARNs of the installation-token secrets (kind app-installation-token, tagged as the README says, rotation enabled with this function) the GitHub rotator refreshes, besides the example's: one schedule refreshes them all, and the function's pre-flight fails a token secret missing here. Every token secret needs it: Secrets Manager rotates at most every 4 hours, tokens live 60 minutes."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.github_token_secret_arns : can(regex("^arn:[a-z-]+:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[^*,]+-[A-Za-z0-9]{6}$", a))])
    error_message = "github_token_secret_arns takes full Secrets Manager secret ARNs (random suffix included), without wildcards or commas."
  }
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
