using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Akka.Persistence.Query;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Actors.Events;

/// <summary>
/// One journaled ledger event as a reader of the journal sees it: its offset (the journal's global order, the public
/// event id), the tenant it belongs to (by tag), and when the journal wrote it.
/// </summary>
public sealed record JournaledEvent(long Offset, TenantId? Tenant, ILedgerEvent Event, DateTimeOffset WrittenAt)
{
    /// <summary>The envelope as a ledger event; null for anything else a journal may hold.</summary>
    public static JournaledEvent? From(EventEnvelope envelope) => envelope.Event is ILedgerEvent evt
        ? new JournaledEvent(((Sequence)envelope.Offset).Value, EventTags.TenantOf(envelope.Tags), evt,
            envelope.Timestamp > 0 ? new DateTimeOffset(envelope.Timestamp, TimeSpan.Zero) : DateTimeOffset.UnixEpoch)
        : null;
}

/// <summary>
/// The one public form of an event, for every way one leaves the node (Server-Sent Events and webhooks):
/// <c>{"id","type","tenant","vmId","at","data"}</c>, with one redaction.
/// </summary>
public static class PublicEvent
{
    /// <summary>
    /// The events' own fields: camelCase, ids as plain strings, enums by name. Line breaks are always escaped, so
    /// one event's JSON is one <c>data:</c> line; HTML characters need not be (this is no HTML page).
    /// </summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters =
        {
            new JsonStringEnumConverter(),
            new StringConverter<VmId>(id => id.Compact, text => VmId.TryParse(text, out var id) ? id : throw new JsonException("not a VM id")),
            new StringConverter<TenantId>(id => id.Value, text => new TenantId(text)),
            new StringConverter<HostId>(id => id.Value, text => new HostId(text)),
            new EpochConverter(),
        },
        WriteIndented = false,
    };

    /// <summary>
    /// <c>at</c> is the event's own time where it has one, else when the journal wrote it; <c>data</c> is the event's
    /// fields, less anything secret.
    /// </summary>
    public static JsonObject ToJson(long offset, ILedgerEvent evt, TenantId? tenant, long journalTicks)
    {
        var data = JsonSerializer.SerializeToNode(evt, evt.GetType(), Json)!.AsObject();
        WithoutSecrets(data);
        var at = data["at"]?.DeepClone()
                 ?? (journalTicks > 0 ? JsonValue.Create(new DateTimeOffset(journalTicks, TimeSpan.Zero)) : null);
        return new JsonObject
        {
            ["id"] = offset,
            ["type"] = evt.GetType().Name,
            ["tenant"] = tenant?.Value,
            ["vmId"] = evt is IVmLedgerEvent vmEvent ? vmEvent.VmId.Compact : null,
            ["at"] = at,
            ["data"] = data,
        };
    }

    public static JsonObject ToJson(JournaledEvent journaled) =>
        ToJson(journaled.Offset, journaled.Event, journaled.Tenant, journaled.WrittenAt.UtcTicks);

    /// <summary>
    /// Drops every property whose name speaks of a secret (a key's secret or its hash) and a VM's user-data (tenants put
    /// passwords and tokens there), at any depth: such a value must not leave the node, whatever event comes to carry one.
    /// </summary>
    public static void WithoutSecrets(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var name in obj.Select(p => p.Key).Where(IsSecret).ToList())
                {
                    obj.Remove(name);
                }

                foreach (var (_, value) in obj)
                {
                    WithoutSecrets(value);
                }

                break;
            case JsonArray array:
                foreach (var item in array)
                {
                    WithoutSecrets(item);
                }

                break;
        }
    }

    private static bool IsSecret(string name) =>
        name.Contains("secret", StringComparison.OrdinalIgnoreCase) || name.Equals("userData", StringComparison.OrdinalIgnoreCase);

    private sealed class StringConverter<T>(Func<T, string> write, Func<string, T> read) : JsonConverter<T>
    {
        public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            read(reader.GetString() ?? throw new JsonException($"{typeof(T).Name} is null"));

        public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) => writer.WriteStringValue(write(value));
    }

    private sealed class EpochConverter : JsonConverter<Epoch>
    {
        public override Epoch Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => new(reader.GetInt64());

        public override void Write(Utf8JsonWriter writer, Epoch value, JsonSerializerOptions options) => writer.WriteNumberValue(value.Value);
    }
}
