//! The answers the simulator gives: the documented message of each code (ERRORCODES.md), the
//! HTTP status that goes with it, and the two error shapes of the description.

use serde_json::{Value, json};

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// JSON body, always sent as `application/json`.
    pub body: Value,
}

impl Answer {
    /// An answer with `status` and `body`.
    pub fn new(status: u16, body: Value) -> Self {
        Answer { status, body }
    }
}

/// The documented message of each code the simulator answers with.
pub fn message(code: u32) -> &'static str {
    match code {
        10001 => {
            "The AuthorizationContext in the request isn't valid for the provided value in the \"to\"/\"channelAddressIdentifier\" field."
        }
        10004 => "The supplied Authorization access token is not valid.",
        10005 => {
            "The AuthorizationContext for the request isn't valid based on the supplied Authorization access token."
        }
        10008 => "The file size exceeds the maximum limit of 25 MB.",
        10009 => "The file is empty or doesn’t exist.",
        10010 => "The interaction contentLength field is empty.",
        10011 => {
            "The number of interactions of type AttachmentInteraction does not match the number of attachment files."
        }
        10012 => "Enter a valid workItemId for the MessagingSession ID.",
        10013 => "Enter either a capacityPercentage or a capacityWeight, but not both.",
        10014 => "Enter a capacity weight greater than or equal to 0.",
        10015 => "Enter a capacity percentage between 0 and 100, inclusive.",
        10016 => "Enter a valid header.",
        10017 => "The channelAddressIdentifier provided does not exist.",
        10018 => "The conversation identifier is not valid.",
        10019 => "The service is in read-only mode because an org migration is in progress. Try again later.",
        10020 => "The endUserClientId provided is not valid.",
        10021 => "Enter a valid Consent Status Enum value.",
        10022 => "Cannot update Consent Status where the Consent Owner of the channel is not set to Partner.",
        10023 => "Cannot update Consent Status where the SupportsKeywords of the channel is true.",
        10024 => "For Flow based Routing, flow ID and Fallback Queue ID are required fields.",
        10025 => "The conversation id isn't found based on channelAddressIdentifier and CUSTOM channel type.",
        10027 => "The provided \"to\" field isn't valid.",
        10028 => "The provided \"from\" field isn't valid.",
        10029 => "The provided interaction list isn't valid.",
        10030 => "Specify either a flow or a queue to Route API.",
        10031 => "The channelAddressIdentifier provided is not active.",
        10032 => "Specified Queue ID is invalid.",
        10033 => "Should not pass in error message when routing result success.",
        10034 => "Error message missing when routing result false.",
        10037 => "The AppType provided is not supported.",
        10045 => "Provide a valid message entry format.",
        10047 => "Specified Message Type is invalid.",
        10048 => "Specified Format Type is invalid.",
        10038 => "The Participant Role provided is not supported.",
        10051 => "The file size (in bytes) of uploaded attachment is incorrect.",
        10055 => "Conversation precondition failed. Please retry.",
        10056 => "Conversation processing aborted. Please retry.",
        10059 => "Interaction ID or Message ID is empty.",
        10060 => "Interaction ID and Message ID are mismatched.",
        10062 => {
            "Invalid message type. Only StaticContentMessage, ChoicesResponseMessage, and FormResponseMessage types are supported for messages sent from an end user."
        }
        10071 => "Session is not found.",
        10082 => "Invalid workId: Please provide a valid workId.",
        10083 => "Invalid context type: The context type provided is not supported or is invalid.",
        10084 => "Invalid botId: Please provide a valid botId.",
        10085 => "Invalid status: Please provide a valid status.",
        10089 => "Invalid parameters passed to API.",
        10093 => "Invalid authorization context type.",
        10094 => "The request failed due to a timeout from a downstream service. Please try again later.",
        10100 => {
            "A request body is required and can't be empty. Provide a valid payload and ensure data is included and correctly formatted."
        }
        10102 => "Invalid operation type value for POST messaging session request.",
        10103 => "Invalid operationBy value for POST messaging session.",
        10105 => "End User not found.",
        10106 => "Messaging Session ID is missing for Inactivate Messaging Session API.",
        15103 => "The Messaging End User is not Fully Opted In",
        15106 => "Invalid User Id parameter",
        15109 => "An active AgentWork record already exists with the same UserId and WorkItemId.",
        15107 => "Enter a conversationId that matches a conversation linked to workItemId.",
        15110 => "Enter a valid workItemId for the MessagingSession ID.",
        _ => "An internal server error occurred. Please contact Salesforce Support.",
    }
}

/// The HTTP status that goes with a code; the same every time.
pub fn status_of(code: u32) -> u16 {
    match code {
        10004 => 401,
        10001 | 10003 | 10005 => 403,
        10071 | 10082 => 404,
        10055 => 412,
        10056 => 409,
        10008 => 413,
        10019 => 503,
        10094 => 504,
        _ => 400,
    }
}

/// An error answer in the description's `Error` shape: `{code, message}`.
pub fn error(code: u32) -> Answer {
    Answer::new(status_of(code), json!({ "code": code, "message": message(code) }))
}

/// An error answer with more words after the documented message.
pub fn error_with(code: u32, detail: &str) -> Answer {
    Answer::new(
        status_of(code),
        json!({ "code": code, "message": format!("{} {detail}", message(code)) }),
    )
}

/// `{success: true}` with `status`.
pub fn success(status: u16) -> Answer {
    Answer::new(status, json!({ "success": true }))
}
