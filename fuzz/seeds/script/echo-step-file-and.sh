echo -n '{"Version":"2012-10-17"}' > policy.json
aws iam put-user-policy --user-name u --policy-name deny --policy-document file://policy.json
# a comment
az network nsg rule update -g rg --nsg-name n -n r --access Deny and gcloud compute firewall-rules delete fw --quiet
