aws s3 ls; aws iam list-users
