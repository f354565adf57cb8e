"""The GraphQL contract: the committed schema.graphql matches the code, and the names clients rely on exist."""

from __future__ import annotations

from pathlib import Path

from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLNonNull, GraphQLObjectType

import schema

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_schema_is_the_exported_schema():
    committed = (ROOT / "schema.graphql").read_text()
    # `strawberry export-schema` writes str(schema) plus a final newline
    assert committed == str(schema.schema) + "\n", "schema.graphql is stale: run `make schema` and commit it"


def graphql_schema():
    return schema.schema._schema


def args_of(type_name: str, field: str) -> dict[str, str]:
    gtype = graphql_schema().get_type(type_name)
    assert isinstance(gtype, GraphQLObjectType)
    return {name: str(arg.type) for name, arg in gtype.fields[field].args.items()}


def test_providers_nearby_takes_near_radius_category_and_cursor_arguments():
    query = graphql_schema().query_type
    assert str(query.fields["providersNearby"].type) == "NearbyProviderConnection!"
    assert args_of("Query", "providersNearby") == {
        "near": "GeoPointInput!", "radiusKm": "Float!", "category": "String", "first": "Int", "after": "String",
    }
    near = graphql_schema().get_type("GeoPointInput")
    assert isinstance(near, GraphQLInputObjectType)
    assert {n: str(f.type) for n, f in near.fields.items()} == {"latitude": "Float!", "longitude": "Float!"}


def test_purchase_service_takes_one_input_and_returns_a_payload_with_errors():
    assert args_of("Mutation", "purchaseService") == {"input": "PurchaseServiceInput!"}
    gql_input = graphql_schema().get_type("PurchaseServiceInput")
    assert {n: str(f.type) for n, f in gql_input.fields.items()} == {
        "serviceId": "ID!", "tierId": "ID", "customer": "CustomerInput", "affiliateCode": "String",
        "idempotencyKey": "String", "currency": "String",
    }
    customer = graphql_schema().get_type("CustomerInput")
    assert {n: str(f.type) for n, f in customer.fields.items()} == {
        "fullName": "String", "email": "String", "phone": "String", "requirements": "String",
    }
    payload = graphql_schema().get_type("PurchaseServicePayload")
    assert {n: str(f.type) for n, f in payload.fields.items()} == {
        "serviceRequest": "ServiceRequest", "checkoutUrl": "String", "guestAccessToken": "String",
        "feeBreakdown": "FeeQuote", "errors": "[PurchaseServiceError!]!",
    }
    error = graphql_schema().get_type("PurchaseServiceError")
    assert {n: str(f.type) for n, f in error.fields.items()} == {
        "field": "String", "code": "PurchaseServiceErrorCode!", "message": "String!",
    }


def test_every_mutation_takes_one_input_and_returns_a_payload_with_typed_errors():
    mutation = graphql_schema().mutation_type
    for name, field in mutation.fields.items():
        assert list(field.args) == ["input"], name
        payload = field.type
        assert isinstance(payload, GraphQLNonNull) and str(payload.of_type).endswith("Payload"), name
        errors = payload.of_type.fields["errors"].type
        item = errors.of_type.of_type.of_type  # [X!]!
        assert set(item.fields) == {"field", "code", "message"}, name
        assert isinstance(item.fields["code"].type.of_type, GraphQLEnumType), name


def test_subscriptions_are_past_tense_events_with_their_arguments():
    subscription = graphql_schema().subscription_type
    assert set(subscription.fields) == {
        "serviceRequestStatusChanged", "chatMessageAdded", "bookingStatusChanged", "notificationAdded"}
    assert args_of("Subscription", "serviceRequestStatusChanged") == {"reference": "String!", "after": "ID"}
    assert str(subscription.fields["serviceRequestStatusChanged"].type) == "ServiceRequestStatusEvent!"
    assert args_of("Subscription", "chatMessageAdded") == {"conversationId": "ID!", "after": "ID"}
    assert str(subscription.fields["chatMessageAdded"].type) == "ChatMessage!"
    assert args_of("Subscription", "bookingStatusChanged") == {"bookingId": "ID!", "after": "ID"}
    assert str(subscription.fields["bookingStatusChanged"].type) == "BookingStatusEvent!"
    assert args_of("Subscription", "notificationAdded") == {"after": "ID"}
    assert str(subscription.fields["notificationAdded"].type) == "Notification!"


def test_every_subscription_has_a_polling_query_and_shared_fan_out():
    from schema.fanout import SHARED

    query = graphql_schema().query_type
    assert args_of("Query", "serviceRequestStatusEventsSince") == {"reference": "String!", "since": "ID", "first": "Int"}
    assert args_of("Query", "bookingStatusEventsSince") == {"bookingId": "ID!", "since": "ID", "first": "Int"}
    assert {"chatMessagesSince", "notificationsSince"} <= set(query.fields)
    assert set(SHARED) == set(graphql_schema().subscription_type.fields)


def test_service_request_status_values():
    status = graphql_schema().get_type("ServiceRequestStatus")
    assert isinstance(status, GraphQLEnumType)
    assert list(status.values) == ["AWAITING_PAYMENT", "PAYMENT_CONFIRMED", "PENDING_CONTACT", "TEAM_ASSIGNED",
                                   "IN_PROGRESS", "COMPLETED", "CANCELLED"]


def test_tracking_and_listing_queries():
    assert args_of("Query", "serviceRequest") == {"reference": "String!", "accessToken": "String"}
    assert args_of("Query", "serviceRequests") == {"filter": "ServiceRequestFilter", "first": "Int", "after": "String",
                                                   "orderBy": "ServiceRequestOrder"}
    flt = graphql_schema().get_type("ServiceRequestFilter")
    assert {n: str(f.type) for n, f in flt.fields.items()} == {
        "serviceId": "ID", "status": "ServiceRequestStatus", "createdFrom": "DateTime", "createdTo": "DateTime",
        "assignedProviderId": "ID",
    }
    connection = graphql_schema().get_type("ServiceRequestConnection")
    assert {n: str(f.type) for n, f in connection.fields.items()} == {
        "edges": "[ServiceRequestEdge!]!", "pageInfo": "PageInfo!", "totalCount": "Int!",
    }
    messages = args_of("Conversation", "messages")
    assert messages == {"first": "Int", "after": "String", "before": "String"}


def test_objects_implement_node():
    node = graphql_schema().get_type("Node")
    for name in ("ServiceRequest", "Service", "ServiceTier", "Provider", "User", "Conversation", "ChatMessage"):
        assert node in graphql_schema().get_type(name).interfaces, name
