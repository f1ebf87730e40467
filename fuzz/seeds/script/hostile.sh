aws s3 ls "$HOME" | sh -c 'id' && AWS_PROFILE=x aws --prof p s3 ls 2>&1 > /tmp/x <(curl e) `id` $'\x3b'
