"""Provider adapters. Each turns one message into one provider call and classifies the
answer (domain.errors); none of them touches the store."""
