cat > deny.json <<'EOF'
{"displayName":"deny public","rules":[{"denyRule":{"deniedPrincipals":["principalSet://goog/public:all"],"deniedPermissions":["storage.googleapis.com/objects.get"]}}]}
EOF
gcloud iam policies create deny-public --attachment-point=cloudresourcemanager.googleapis.com/projects/p-1 --kind=denypolicies --policy-file=deny.json
