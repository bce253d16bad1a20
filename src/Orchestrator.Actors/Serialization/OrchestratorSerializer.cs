using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Akka.Actor;
using Akka.Serialization;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Actors.Serialization;

/// <summary>
/// JSON with a short, stable manifest per type (its family and name). Journal rows stay readable with sqlite3/psql,
/// and a renamed record fails loudly at recovery rather than silently. The ledger's snapshot alone is binary
/// (<see cref="LedgerSnapshotFormat"/>), under a manifest of its own.
/// </summary>
public sealed class OrchestratorSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.General)
    {
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>Every serializable type by manifest.</summary>
    public static readonly FrozenDictionary<string, Type> TypesByManifest = DiscoverTypes().ToFrozenDictionary();

    private static readonly FrozenDictionary<Type, string> ManifestsByType =
        TypesByManifest.ToFrozenDictionary(kv => kv.Value, kv => kv.Key);

    public override int Identifier => 4711;

    public override string Manifest(object o) =>
        o is LedgerSnapshot ? LedgerSnapshotFormat.Manifest
        : ManifestsByType.TryGetValue(o.GetType(), out var manifest) ? manifest
        : throw new ArgumentException($"{o.GetType()} is not registered with {nameof(OrchestratorSerializer)}");

    /// <summary>
    /// The ledger's events' source-generated contracts (<see cref="LedgerEventJson"/>), by type, each made when first
    /// used: making all fifty at once took 127 ms, which a recovering scheduler waited for at its first event.
    /// </summary>
    private static readonly ConcurrentDictionary<Type, JsonTypeInfo?> GeneratedByType = new();

    /// <summary>The generated contracts, less what is computed from the rest (<see cref="WithoutComputed"/>).</summary>
    private static readonly JsonSerializerOptions EventJson = new(LedgerEventJson.Default.Options)
    {
        TypeInfoResolver = LedgerEventJson.Default.WithAddedModifier(WithoutComputed),
    };

    private static JsonTypeInfo? Generated(Type type) =>
        GeneratedByType.GetOrAdd(type, static t => typeof(ILedgerEvent).IsAssignableFrom(t) ? EventJson.GetTypeInfo(t) : null);

    /// <summary>
    /// Leaves out of a contract what reading would restore by itself: the properties that reading never sets (those with
    /// neither a setter nor a constructor parameter, computed from the rest: <c>VmId.Compact</c>,
    /// <c>VmSpec.EffectiveResources</c>, <c>EffectiveLabels</c>, <c>EffectiveDiskGiB</c> …), and a constructor parameter's
    /// null where a missing one reads as null. They were written and skipped or defaulted when read back: some 570 of a
    /// <c>VmRequested</c>'s 750 bytes, serialized (and computed, allocating) for every placement, stored, and parsed again
    /// at every recovery. Rows written with them still read the same.
    /// </summary>
    internal static void WithoutComputed(JsonTypeInfo contract)
    {
        if (contract.Kind != JsonTypeInfoKind.Object)
        {
            return;
        }

        for (var i = contract.Properties.Count - 1; i >= 0; i--)
        {
            var property = contract.Properties[i];
            if (property is { Set: null, AssociatedParameter: null })
            {
                contract.Properties.RemoveAt(i);
            }
            else if (property.AssociatedParameter is { } parameter && (!parameter.HasDefaultValue || parameter.DefaultValue is null)
                     && (!property.PropertyType.IsValueType || Nullable.GetUnderlyingType(property.PropertyType) is not null))
            {
                // A constructor's parameter that is left out reads as null (its default, or the type's): so is a null
                // one. A VM's spec has a dozen fields that are mostly null.
                property.ShouldSerialize = static (_, value) => value is not null;
            }
        }
    }

    /// <summary>
    /// JSON, except for the ledger's snapshot: at a million VMs its JSON took seconds to read back. The ledger's events
    /// are written by their generated contracts (reflection's bytes, less the computed properties), everything else by
    /// reflection.
    /// </summary>
    public override byte[] ToBinary(object obj) =>
        obj is LedgerSnapshot snapshot ? LedgerSnapshotFormat.Write(snapshot)
        : Generated(obj.GetType()) is { } generated ? JsonSerializer.SerializeToUtf8Bytes(obj, generated)
        : JsonSerializer.SerializeToUtf8Bytes(obj, obj.GetType(), Json);

    /// <summary>The type's source-generated contract, where it has one (for the test that the bytes are the same).</summary>
    internal static JsonTypeInfo? GeneratedContract(Type type) => Generated(type);

    /// <remarks>
    /// Snapshots stored before the binary format, under the type's plain manifest, are still read as JSON. The ledger's
    /// events are read by their generated contracts too, under the same options, so they read what reflection read (a test
    /// holds every event type to that): reflection would build its own contract and compile its accessors for each type.
    /// </remarks>
    public override object FromBinary(byte[] bytes, string manifest) =>
        manifest == LedgerSnapshotFormat.Manifest ? LedgerSnapshotFormat.Read(bytes)
        : TypesByManifest.TryGetValue(manifest, out var type)
            ? (Generated(type) is { } generated ? JsonSerializer.Deserialize(bytes, generated) : JsonSerializer.Deserialize(bytes, type, Json))
              ?? throw new SerializationException($"null payload for {manifest}")
        : throw new SerializationException($"unknown manifest '{manifest}'");

    private static IEnumerable<KeyValuePair<string, Type>> DiscoverTypes()
    {
        var markers = new[] { typeof(ILedgerEvent), typeof(ILedgerCommand), typeof(IOrchestratorMessage) };
        var types = new[] { typeof(ILedgerEvent).Assembly, typeof(OrchestratorSerializer).Assembly }
            .SelectMany(a => a.GetTypes())
            .Where(t => t is { IsAbstract: false, IsInterface: false } && markers.Any(m => m.IsAssignableFrom(t)));
        var seen = new Dictionary<string, Type>(StringComparer.Ordinal);
        foreach (var type in types)
        {
            // "LedgerEvents.VmPlaced": the family and the record, short and stable.
            var manifest = type.DeclaringType is { } family ? $"{family.Name}.{type.Name}" : type.Name;
            if (!seen.TryAdd(manifest, type))
            {
                throw new InvalidOperationException($"two serializable types are named {manifest}: {seen[manifest]} and {type}");
            }
        }

        return seen;
    }
}

public sealed class SerializationException(string message) : Exception(message);
