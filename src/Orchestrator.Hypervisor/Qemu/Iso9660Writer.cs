// A minimal ISO 9660 image of a few small files in its root, with Joliet names: what a NoCloud seed needs, written in
// process (as CpioNewcWriter does for initrds) so that no tool is run over tenant data.
using System.Buffers.Binary;
using System.Text;

namespace Orchestrator.Hypervisor.Qemu;

/// <summary>
/// Writes an ISO 9660 image (ECMA-119) holding files in its root directory only. Each file is listed twice over the
/// same bytes: under an 8.3 name in the primary volume descriptor, and under its real name in a Joliet supplementary
/// one, which Linux (and so cloud-init) reads by default. Layout: 16 empty sectors, the primary descriptor, the Joliet
/// descriptor, the terminator, four path tables, the two root directories, then the files, each from a sector start.
/// </summary>
public static class Iso9660Writer
{
    public const int SectorSize = 2048;

    private const int PrimaryDescriptorSector = 16;
    private const int PathTablesSector = 19; // L and M for the primary tree, then L and M for Joliet: one sector each
    private const int PrimaryRootSector = 23;
    private const int JolietRootSector = 24;
    private const int FirstFileSector = 25;
    private const int PathTableBytes = 10; // one entry: the root

    /// <param name="volumeId">the volume label (at most 16 characters: the Joliet descriptor holds 16 UCS-2 ones).</param>
    /// <param name="files">names (printable ASCII, at most 32 characters) and contents; at most 10, so each root directory fits one sector.</param>
    public static byte[] Build(string volumeId, IReadOnlyList<(string Name, byte[] Content)> files, DateTimeOffset recorded)
    {
        if (volumeId.Length is 0 or > 16 || files.Count > 10 || files.Any(f => f.Name.Length is 0 or > 32 || f.Name.Any(c => c is < ' ' or > '~')))
        {
            throw new ArgumentException("a volume id of 1-16 characters and at most 10 files with ASCII names of 1-32 characters");
        }

        var extents = new List<int>();
        var next = FirstFileSector;
        foreach (var (_, content) in files)
        {
            extents.Add(next);
            next += Sectors(content.Length);
        }

        var image = new byte[next * SectorSize];
        var primaryNames = files.Select((f, i) => Encoding.ASCII.GetBytes(ShortName(f.Name, i))).ToList();
        var jolietNames = files.Select(f => Encoding.BigEndianUnicode.GetBytes(f.Name)).ToList();

        WriteDescriptor(image.AsSpan(PrimaryDescriptorSector * SectorSize, SectorSize), type: 1, volumeId, next, PathTablesSector,
            PrimaryRootSector, recorded, joliet: false);
        WriteDescriptor(image.AsSpan((PrimaryDescriptorSector + 1) * SectorSize, SectorSize), type: 2, volumeId, next, PathTablesSector + 2,
            JolietRootSector, recorded, joliet: true);
        var terminator = image.AsSpan((PrimaryDescriptorSector + 2) * SectorSize, SectorSize);
        terminator[0] = 255;
        "CD001"u8.CopyTo(terminator[1..]);
        terminator[6] = 1;

        WritePathTables(image, PathTablesSector, PrimaryRootSector);
        WritePathTables(image, PathTablesSector + 2, JolietRootSector);
        WriteRoot(image.AsSpan(PrimaryRootSector * SectorSize, SectorSize), PrimaryRootSector, primaryNames, files, extents, recorded);
        WriteRoot(image.AsSpan(JolietRootSector * SectorSize, SectorSize), JolietRootSector, jolietNames, files, extents, recorded);
        for (var i = 0; i < files.Count; i++)
        {
            files[i].Content.CopyTo(image.AsSpan(extents[i] * SectorSize));
        }

        return image;
    }

    private static int Sectors(int bytes) => (bytes + SectorSize - 1) / SectorSize;

    /// <summary>An ISO level 1 name: "META_DAT.;1" for "meta-data"; a number keeps names that would clash apart.</summary>
    private static string ShortName(string name, int index)
    {
        var stem = new string([.. name.ToUpperInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_').Take(6)]);
        return $"{stem}{index:D2}.;1";
    }

    private static void WriteDescriptor(Span<byte> d, byte type, string volumeId, int totalSectors, int pathTableSector, int rootSector,
        DateTimeOffset recorded, bool joliet)
    {
        d[0] = type;
        "CD001"u8.CopyTo(d[1..]);
        d[6] = 1;
        Text(d.Slice(8, 32), "", joliet);
        Text(d.Slice(40, 32), volumeId, joliet);
        BothEndian32(d[80..], totalSectors);
        if (joliet)
        {
            "%/E"u8.CopyTo(d[88..]); // UCS-2 level 3
        }

        BothEndian16(d[120..], 1); // volume set size
        BothEndian16(d[124..], 1); // volume sequence number
        BothEndian16(d[128..], SectorSize);
        BothEndian32(d[132..], PathTableBytes);
        BinaryPrimitives.WriteInt32LittleEndian(d[140..], pathTableSector);
        BinaryPrimitives.WriteInt32BigEndian(d[148..], pathTableSector + 1);
        DirectoryRecord(d.Slice(156, 34), rootSector, SectorSize, directory: true, [0], recorded);
        foreach (var (offset, length) in new[] { (190, 128), (318, 128), (446, 128), (574, 128), (702, 37), (739, 37), (776, 37) })
        {
            Text(d.Slice(offset, length), "", joliet);
        }

        var stamp = Encoding.ASCII.GetBytes(recorded.UtcDateTime.ToString("yyyyMMddHHmmss00", System.Globalization.CultureInfo.InvariantCulture));
        stamp.CopyTo(d[813..]); // created
        stamp.CopyTo(d[830..]); // modified
        "0000000000000000"u8.CopyTo(d[847..]); // never expires
        "0000000000000000"u8.CopyTo(d[864..]); // effective at once
        d[881] = 1; // file structure version
    }

    // Identifier fields are padded with spaces: one byte each in the primary descriptor, UCS-2 big-endian in Joliet's.
    private static void Text(Span<byte> field, string text, bool joliet)
    {
        if (joliet)
        {
            for (var i = 0; i + 1 < field.Length; i += 2)
            {
                BinaryPrimitives.WriteUInt16BigEndian(field[i..], i / 2 < text.Length ? text[i / 2] : ' ');
            }
        }
        else
        {
            field.Fill((byte)' ');
            Encoding.ASCII.GetBytes(text, field);
        }
    }

    private static void WritePathTables(byte[] image, int sector, int rootSector)
    {
        var little = image.AsSpan(sector * SectorSize);
        little[0] = 1; // the root's identifier is one byte, 0
        BinaryPrimitives.WriteInt32LittleEndian(little[2..], rootSector);
        BinaryPrimitives.WriteInt16LittleEndian(little[6..], 1);
        var big = image.AsSpan((sector + 1) * SectorSize);
        big[0] = 1;
        BinaryPrimitives.WriteInt32BigEndian(big[2..], rootSector);
        BinaryPrimitives.WriteInt16BigEndian(big[6..], 1);
    }

    private static void WriteRoot(Span<byte> sector, int rootSector, List<byte[]> names, IReadOnlyList<(string Name, byte[] Content)> files,
        List<int> extents, DateTimeOffset recorded)
    {
        var at = DirectoryRecord(sector, rootSector, SectorSize, directory: true, [0], recorded); // "."
        at += DirectoryRecord(sector[at..], rootSector, SectorSize, directory: true, [1], recorded); // "..": the root is its own parent
        for (var i = 0; i < files.Count; i++)
        {
            at += DirectoryRecord(sector[at..], extents[i], files[i].Content.Length, directory: false, names[i], recorded);
        }
    }

    /// <returns>the record's length.</returns>
    private static int DirectoryRecord(Span<byte> r, int extent, int length, bool directory, byte[] name, DateTimeOffset recorded)
    {
        var size = 33 + name.Length + (name.Length % 2 == 0 ? 1 : 0); // padded to an even length
        r[0] = (byte)size;
        BothEndian32(r[2..], extent);
        BothEndian32(r[10..], length);
        var utc = recorded.UtcDateTime;
        r[18] = (byte)(utc.Year - 1900);
        r[19] = (byte)utc.Month;
        r[20] = (byte)utc.Day;
        r[21] = (byte)utc.Hour;
        r[22] = (byte)utc.Minute;
        r[23] = (byte)utc.Second;
        r[25] = (byte)(directory ? 2 : 0);
        BothEndian16(r[28..], 1);
        r[32] = (byte)name.Length;
        name.CopyTo(r[33..]);
        return size;
    }

    private static void BothEndian16(Span<byte> at, int value)
    {
        BinaryPrimitives.WriteInt16LittleEndian(at, (short)value);
        BinaryPrimitives.WriteInt16BigEndian(at[2..], (short)value);
    }

    private static void BothEndian32(Span<byte> at, int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(at, value);
        BinaryPrimitives.WriteInt32BigEndian(at[4..], value);
    }
}
