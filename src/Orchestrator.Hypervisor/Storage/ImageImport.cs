// Safe image import (issue 18, part 5): an image a tenant or an operator hands over is streamed into the pool under a
// temporary name, hashed, and inspected with qemu-img under the format it was declared as, never a guessed one. A qcow2
// that names a backing file or an external data file would have QEMU open a host file for the guest (the class of bug
// behind several OpenStack Glance/Nova advisories); a format that is not what was declared, or a virtual size over the
// limit, is refused too. A refused image leaves nothing behind.
using System.Security.Cryptography;
using System.Text.Json;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Hypervisor.Storage;

/// <summary>The image formats an import may declare.</summary>
public static class ImageFormats
{
    public const string Qcow2 = "qcow2";
    public const string Raw = "raw";

    public static readonly IReadOnlyList<string> Known = [Qcow2, Raw];
}

/// <summary>Why an image was refused, in words that name the problem; <see cref="Field"/> is the request field it concerns.</summary>
public sealed class ImageRefusedException(string field, string message) : Exception(message)
{
    public string Field { get; } = field;
}

/// <summary>An accepted image: where it now is, its SHA-256 (hex, lowercase), its size on disk and its virtual size.</summary>
public sealed record ImportedImage(string Path, string Format, string Sha256, long Bytes, long VirtualBytes);

/// <summary>What <c>qemu-img info</c> said about an image read as its declared format.</summary>
public sealed record ImageInspection(string Format, long VirtualBytes, string? BackingFile, string? DataFile);

public static class ImageImport
{
    /// <summary>
    /// Streams <paramref name="source"/> to <paramref name="destination"/> (at most <paramref name="maxBytes"/>), then
    /// accepts it only when <see cref="CheckAsync"/> does; a refused or failed import deletes what it wrote.
    /// </summary>
    /// <exception cref="ImageRefusedException">the image is too big, not what it was declared, or names a host file.</exception>
    public static async Task<ImportedImage> ImportAsync(Stream source, string declaredFormat, string destination, long maxBytes,
        long maxVirtualBytes, CancellationToken cancellationToken)
    {
        if (!ImageFormats.Known.Contains(declaredFormat, StringComparer.Ordinal))
        {
            throw new ImageRefusedException("format", $"must be one of {string.Join(", ", ImageFormats.Known)}, was '{FieldError.Echo(declaredFormat)}'");
        }

        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(destination))!;
        Qemu.QemuDriver.EnsureDirectory(directory);
        var partial = System.IO.Path.Combine(directory, $".import.{Guid.NewGuid():N}.partial");
        try
        {
            var (sha256, bytes) = await CopyCappedAsync(source, partial, maxBytes, cancellationToken);
            var inspection = await CheckAsync(partial, declaredFormat, maxVirtualBytes, cancellationToken);
            File.Move(partial, destination);
            return new ImportedImage(destination, declaredFormat, sha256, bytes, inspection.VirtualBytes);
        }
        finally
        {
            File.Delete(partial);
        }
    }

    /// <summary>Copies at most <paramref name="maxBytes"/> into a new owner-only file, hashing as it goes.</summary>
    private static async Task<(string Sha256, long Bytes)> CopyCappedAsync(Stream source, string path, long maxBytes, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await using var file = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        var buffer = new byte[1 << 20];
        long total = 0;
        int read;
        while ((read = await source.ReadAsync(buffer, ct)) > 0)
        {
            total += read;
            if (total > maxBytes)
            {
                throw new ImageRefusedException("file", $"the image is larger than the {maxBytes} bytes an upload may have");
            }

            hash.AppendData(buffer, 0, read);
            await file.WriteAsync(buffer.AsMemory(0, read), ct);
        }

        return (Convert.ToHexStringLower(hash.GetHashAndReset()), total);
    }

    /// <summary>
    /// Refuses the image unless it is what was declared and stands alone: its own magic must match the declaration (a
    /// qcow2 or another container declared raw would be handed to the guest as a raw disk it could then rewrite into
    /// anything), <c>qemu-img info -f &lt;declared&gt;</c> must read it, and a qcow2 must name neither a backing file nor an
    /// external data file. Its virtual size must be within <paramref name="maxVirtualBytes"/>.
    /// </summary>
    public static async Task<ImageInspection> CheckAsync(string path, string declaredFormat, long maxVirtualBytes, CancellationToken ct)
    {
        var detected = await DetectContainerAsync(path, ct);
        if (declaredFormat == ImageFormats.Raw && detected is not null)
        {
            throw new ImageRefusedException("format", $"the image was declared raw but is a {detected} image");
        }

        if (declaredFormat == ImageFormats.Qcow2 && detected != ImageFormats.Qcow2)
        {
            throw new ImageRefusedException("format", $"the image was declared qcow2 but is {(detected is null ? "not a qcow2 (raw data?)" : $"a {detected} image")}");
        }

        string json;
        try
        {
            json = await QemuImg.RunAsync(["info", "--output=json", "-f", declaredFormat, path], "read the image", ct);
        }
        catch (HypervisorException ex)
        {
            throw new ImageRefusedException("format", $"qemu-img cannot read it as {declaredFormat}: {ex.Message}");
        }

        var inspection = Parse(json);
        if (inspection.Format != declaredFormat)
        {
            throw new ImageRefusedException("format", $"the image was declared {declaredFormat} but qemu-img reads it as {inspection.Format}");
        }

        if (inspection.BackingFile is { } backing)
        {
            throw new ImageRefusedException("file", $"the image names a backing file ('{FieldError.Echo(backing)}'): an image must stand alone");
        }

        if (inspection.DataFile is { } data)
        {
            throw new ImageRefusedException("file", $"the image names an external data file ('{FieldError.Echo(data)}'): an image must stand alone");
        }

        return inspection.VirtualBytes > maxVirtualBytes
            ? throw new ImageRefusedException("file", $"its virtual size, {inspection.VirtualBytes} bytes, is over the limit of {maxVirtualBytes}")
            : inspection;
    }

    private static ImageInspection Parse(string json)
    {
        using var info = JsonDocument.Parse(json);
        var root = info.RootElement;
        var backing = root.TryGetProperty("backing-filename", out var b) ? b.GetString()
            : root.TryGetProperty("full-backing-filename", out var fb) ? fb.GetString() : null;
        string? dataFile = null;
        if (root.TryGetProperty("format-specific", out var specific) && specific.TryGetProperty("data", out var data)
            && data.TryGetProperty("data-file", out var file))
        {
            dataFile = file.GetString();
        }

        return new ImageInspection(root.GetProperty("format").GetString() ?? "", root.GetProperty("virtual-size").GetInt64(), backing, dataFile);
    }

    /// <summary>The container format the file's first bytes announce (qcow2, qed, vmdk, vdi, vhdx, luks, vpc), null for none.</summary>
    private static async Task<string?> DetectContainerAsync(string path, CancellationToken ct)
    {
        var head = new byte[512];
        await using (var file = File.OpenRead(path))
        {
            await file.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, ct);
        }

        static bool At(byte[] bytes, int offset, ReadOnlySpan<byte> magic) => bytes.AsSpan(offset).StartsWith(magic);
        return At(head, 0, [0x51, 0x46, 0x49, 0xfb]) ? ImageFormats.Qcow2
            : At(head, 0, [0x51, 0x46, 0x49, 0x00]) ? "qed"
            : At(head, 0, "KDMV"u8) || At(head, 0, "# Disk DescriptorFile"u8) ? "vmdk"
            : At(head, 64, [0x7f, 0x10, 0xda, 0xbe]) ? "vdi"
            : At(head, 0, "vhdxfile"u8) ? "vhdx"
            : At(head, 0, [0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]) ? "luks"
            : At(head, 0, "conectix"u8) ? "vpc"
            : null;
    }
}
