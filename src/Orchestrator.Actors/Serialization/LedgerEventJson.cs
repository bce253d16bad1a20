using System.Text.Json;
using System.Text.Json.Serialization;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Actors.Serialization;

/// <summary>
/// The ledger's events as source-generated JSON: every placement writes two or three of them, and the reflection-based
/// serializer's general path cost a stack of frames and a converter walk per event. Same options as
/// <see cref="OrchestratorSerializer.Json"/>, so the same bytes, and read back as reflection reads them (tests hold every
/// event type to both). A new ledger event type is added here.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.General, UseStringEnumConverter = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never, GenerationMode = JsonSourceGenerationMode.Default)]
[JsonSerializable(typeof(ForwardEvents.ForwardAdded))]
[JsonSerializable(typeof(ForwardEvents.ForwardRemoved))]
[JsonSerializable(typeof(ImageEvents.ImageDeleted))]
[JsonSerializable(typeof(ImageEvents.ImageRegistered))]
[JsonSerializable(typeof(LedgerEvents.ApiKeyIssued))]
[JsonSerializable(typeof(LedgerEvents.ApiKeyRevoked))]
[JsonSerializable(typeof(LedgerEvents.HostLost))]
[JsonSerializable(typeof(LedgerEvents.HostRegistered))]
[JsonSerializable(typeof(LedgerEvents.RuleCreated))]
[JsonSerializable(typeof(LedgerEvents.RuleDeleted))]
[JsonSerializable(typeof(LedgerEvents.RuleFired))]
[JsonSerializable(typeof(LedgerEvents.SharesChanged))]
[JsonSerializable(typeof(LedgerEvents.TenantCreated))]
[JsonSerializable(typeof(LedgerEvents.TenantUpdated))]
[JsonSerializable(typeof(LedgerEvents.VmDeleteRequested))]
[JsonSerializable(typeof(LedgerEvents.VmDesiredStateChanged))]
[JsonSerializable(typeof(LedgerEvents.VmFailed))]
[JsonSerializable(typeof(LedgerEvents.VmLabelsChanged))]
[JsonSerializable(typeof(LedgerEvents.VmPending))]
[JsonSerializable(typeof(LedgerEvents.VmPlaced))]
[JsonSerializable(typeof(LedgerEvents.VmReady))]
[JsonSerializable(typeof(LedgerEvents.VmReleased))]
[JsonSerializable(typeof(LedgerEvents.VmRequested))]
[JsonSerializable(typeof(LedgerEvents.VmResourcesChanged))]
[JsonSerializable(typeof(LedgerEvents.VmRestarting))]
[JsonSerializable(typeof(LedgerEvents.VmStarted))]
[JsonSerializable(typeof(LedgerEvents.VmStopped))]
[JsonSerializable(typeof(LedgerEvents.WebhookCreated))]
[JsonSerializable(typeof(LedgerEvents.WebhookDeleted))]
[JsonSerializable(typeof(NetworkEvents.NetworkCreated))]
[JsonSerializable(typeof(NetworkEvents.NetworkDeleted))]
[JsonSerializable(typeof(PlacementEvents.GroupCreated))]
[JsonSerializable(typeof(PlacementEvents.GroupDeleted))]
[JsonSerializable(typeof(PlacementEvents.HostLabelsChanged))]
[JsonSerializable(typeof(SecurityGroupEvents.NicSecurityGroupsChanged))]
[JsonSerializable(typeof(SecurityGroupEvents.SecurityGroupCreated))]
[JsonSerializable(typeof(SecurityGroupEvents.SecurityGroupDeleted))]
[JsonSerializable(typeof(SecurityGroupEvents.SecurityRuleAdded))]
[JsonSerializable(typeof(SecurityGroupEvents.SecurityRuleRemoved))]
[JsonSerializable(typeof(SnapshotEvents.SnapshotDeleted))]
[JsonSerializable(typeof(SnapshotEvents.SnapshotsReady))]
[JsonSerializable(typeof(SnapshotEvents.SnapshotTaken))]
[JsonSerializable(typeof(SnapshotEvents.VmDiskRestored))]
[JsonSerializable(typeof(VolumeEvents.VolumeAttached))]
[JsonSerializable(typeof(VolumeEvents.VolumeCreated))]
[JsonSerializable(typeof(VolumeEvents.VolumeDeleted))]
[JsonSerializable(typeof(VolumeEvents.VolumeDetached))]
[JsonSerializable(typeof(VolumeEvents.VolumeResized))]
internal sealed partial class LedgerEventJson : JsonSerializerContext;
