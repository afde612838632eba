"""newsdesk's query side: a question in, an answer citing exact source sentences out."""
