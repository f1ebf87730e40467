aws s3api put-public-access-block --bucket logs-999 \
  --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true && \
  aws s3api put-bucket-versioning --bucket logs-999 --versioning-configuration Status=Enabled
