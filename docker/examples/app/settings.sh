# The app's settings (seed 000's missing field was AWS_REGION).
APP_NAME=example
AWS_REGION=us-east-1
